"""Benchmark: search throughput, and our front against plain Optuna on the same trial budget.

(a) Trials per second for efficientnet_b0 at 224x224 with the default ranges and sampler (TPE),
    in one process and with two workers, on the default SQLite file and on a journal file. Rates
    come from the trials' own start and finish times, so process start-up (imports, width space,
    first solve) is not counted. Goal (issue 5): >= 20 trials/s in one process.
(b) The same trial budget given to plain Optuna sampling a width multiplier per free group
    directly (no convex solve), rounded to the same multiple-of-8 grid, under the same cost
    constraints (params and MACs at most the loosest budget of the default ranges, 1.2x; other
    trials are pruned). Both fronts are compared by hypervolume in (-log SynExp, params ratio,
    MACs ratio), with one reference point. Goal: ours dominates.

    uv run python studies/bench_search.py [--trials 200]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

from widthsearch import WidthSpace
from widthsearch.rounding import nearest, width_grid
from widthsearch.search import front, open_storage, open_study, run_search
from widthsearch.study import Ranges, StudyConfig
from widthsearch.synexp import log_synexp

MODEL = "efficientnet_b0"


def rate(study: optuna.Study) -> float:
    """Finished trials per second between the first start and the last finish."""
    done = [t for t in study.trials if t.datetime_complete is not None]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    return len(done) / (last - first).total_seconds()


def throughput(trials: int, tmp: str) -> dict[str, float]:
    results = {}
    for storage_kind in ("sqlite", "journal"):
        for workers in (1, 2):
            url = (
                f"sqlite:///{tmp}/{storage_kind}{workers}.db"
                if storage_kind == "sqlite"
                else f"journal:{tmp}/{storage_kind}{workers}.log"
            )
            config = StudyConfig(model=MODEL, trials=trials, seed=0)
            run_search(config, url, workers=workers)
            study = open_study(config, open_storage(url), create=False)
            results[f"{storage_kind}, {workers} worker(s)"] = rate(study)
    return results


def plain_optuna_front(space: WidthSpace, trials: int, ranges: Ranges) -> list[tuple]:
    """Optuna (TPE) sampling per-group multipliers directly, same grid and cost limits."""
    grid = width_grid(
        space, divisor=8, min_width=ranges.min_width[0], max_width=ranges.max_width[1]
    )
    limit_p = ranges.params[1] * space.params()
    limit_m = ranges.macs[1] * space.macs()
    free = [g for g in space.groups if not g.fixed]

    def objective(trial: optuna.Trial):
        widths = [g.width for g in space.groups]
        for g in free:
            x = trial.suggest_float(f"x{g.id}", ranges.min_width[0], ranges.max_width[1], log=True)
            widths[g.id] = nearest(grid[g.id], x * g.width)
        params, macs = space.params(widths), space.macs(widths)
        if params > limit_p or macs > limit_m:
            raise optuna.TrialPruned("over the cost limits")
        return log_synexp(space, widths), params, macs

    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=0)
    )
    study.optimize(objective, n_trials=trials)
    return [tuple(t.values) for t in study.best_trials]


def to_points(values: list[tuple], space: WidthSpace) -> np.ndarray:
    return np.array([[-s, p / space.params(), m / space.macs()] for s, p, m in values])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        rates = throughput(args.trials, tmp)
        config = StudyConfig(model=MODEL, trials=args.trials, seed=0)
        ours_study = open_study(config, open_storage(f"sqlite:///{tmp}/sqlite1.db"), create=False)
        ours = [tuple(t.values) for t in front(ours_study)]
    print(
        f"(a) {MODEL} at 224x224, {args.trials} trials, TPE, default ranges; trials/s after "
        "start-up:"
    )
    for name, value in rates.items():
        print(f"    {name:<24}{value:6.1f}")

    space = WidthSpace.from_timm(MODEL)
    plain = plain_optuna_front(space, args.trials, config.ranges)
    p_ours, p_plain = to_points(ours, space), to_points(plain, space)
    both = np.vstack([p_ours, p_plain])
    reference = np.array(
        [both[:, 0].max() + 1.0, config.ranges.params[1] + 0.01, config.ranges.macs[1] + 0.01]
    )
    hv_ours = compute_hypervolume(p_ours, reference)
    hv_plain = compute_hypervolume(p_plain, reference)
    hv_union = compute_hypervolume(both, reference)
    print(
        f"(b) fronts after {args.trials} trials, hypervolume in (-log SynExp, params ratio, "
        f"MACs ratio), reference {np.round(reference, 2).tolist()}:"
    )
    print(f"    widthsearch (one GP solve per trial): {len(ours):4d} points, HV {hv_ours:10.2f}")
    print(f"    plain Optuna (per-group multipliers): {len(plain):4d} points, HV {hv_plain:10.2f}")
    print(
        f"    union of both:                              HV {hv_union:10.2f} "
        f"(ours covers {hv_ours / hv_union:.1%} of it)"
    )
    print(
        f"    best log SynExp: ours {p_ours[:, 0].min() * -1:+.2f}, "
        f"plain {p_plain[:, 0].min() * -1:+.2f}"
    )


if __name__ == "__main__":
    main()
