"""Benchmark: search throughput at scale, the samplers compared, and plain Optuna as a baseline.

(a) Throughput. efficientnet_b0 at 224x224, default ranges and sampler (qmc), on the default
    SQLite storage in one process, and with two workers and on a journal file: trials per
    second over the last 100 trials at trial 100, 1,000 and 2,000 (from the trials' own
    timestamps, so start-up is not counted). Goal (issue 11): >= 20 trials/s from trial 1 to
    2,000 on SQLite in one process.
(b) Samplers. The same study (seed 0) run by each sampler on SQLite in one process; at 200,
    1,000 and 2,000 trials (the first N trials of the study): the last-100 rate, the front size
    stored and shown (the thinned front `widthsearch front` prints, at most 40 rows), the
    hypervolume of the front in (-log SynExp, params ratio, MACs ratio) against one reference
    point, and its coverage of the best front known (the union of every sampler's 2,000 trials):
    for each point of that front, the smallest e such that the sampler's front has a point with
    at most 1+e times its params and MACs and at least its log SynExp; median and 90th
    percentile (0: the point itself was found).
(c) Plain Optuna (TPE) sampling a width multiplier per free group directly (no convex solve),
    rounded to the same multiple-of-8 grid, pruned above the loosest budgets of the default
    ranges (1.2x), against widthsearch's default at the same trial budget, by hypervolume.

    uv run python benchmarks/bench_search.py [--trials 2000] [--samplers qmc,random,nsga2,tpe]
        [--parts a,b,c] [--plain-trials 200] [--configs sqlite1,sqlite2,journal1,journal2]
        [--repeat 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume

from widthsearch import WidthSpace
from widthsearch.search import open_storage, open_study, run_search
from widthsearch.search.front import choose_eps, pareto_mask, thin_front, trial_summary
from widthsearch.solve.rounding import nearest, width_grid
from widthsearch.solve.synexp import log_synexp
from widthsearch.studyfile import Ranges, StudyConfig

MODEL = "efficientnet_b0"
MARKS = (100, 1000, 2000)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Finished trials in the order they finished."""
    done = [t for t in study.trials if t.datetime_complete is not None]
    return sorted(done, key=lambda t: t.datetime_complete)


def rate_at(trials: list[optuna.trial.FrozenTrial], mark: int, window: int = 100) -> float:
    """Trials per second over the ``window`` trials that finished up to the ``mark``-th."""
    last = trials[mark - window : mark]
    span = (last[-1].datetime_complete - last[0].datetime_complete).total_seconds()
    return (len(last) - 1) / span


def run(config: StudyConfig, url: str, workers: int = 1) -> optuna.Study:
    start = time.perf_counter()
    run_search(config, url, workers=workers)
    print(f"    ({config.name}: {config.trials} trials in {time.perf_counter() - start:.0f} s)")
    return open_study(config, open_storage(url), create=False)


def cpu_per_trial(trials: int, tmp: str) -> list[tuple[int, int, float]]:
    """CPU seconds of this process per trial, stage by stage (run to 100, then resume to each
    mark): what a free core gives, whatever else the machine runs. A resume's start-up (the
    width space, the program) is counted in its stage."""
    url = f"sqlite:///{tmp}/cpu.db"
    stages, done = [], 0
    for mark in [m for m in MARKS if m <= trials]:
        config = StudyConfig(model=MODEL, trials=mark, seed=0, study_name="cpu")
        start = time.process_time()
        run_search(config, url)
        if done:
            stages.append((done, mark, (time.process_time() - start) / (mark - done)))
        done = mark
    return stages


def throughput(trials: int, tmp: str, configs: list[str], repeat: int) -> None:
    marks = [m for m in MARKS if m <= trials]
    print(f"(a) {MODEL} at 224x224, default ranges and sampler (qmc), {trials} trials; trials/s")
    print(
        "    over the last 100 trials at trial " + ", ".join(map(str, marks)) + f"; median of "
        f"{repeat} run(s)"
    )
    rows = []
    for name in configs:
        kind, workers = name[:-1], int(name[-1])
        runs = []
        for r in range(repeat):
            stem = f"{tmp}/a_{name}_{r}"
            url = f"sqlite:///{stem}.db" if kind == "sqlite" else f"journal:{stem}.log"
            config = StudyConfig(model=MODEL, trials=trials, seed=0, study_name=name)
            done = finished(run(config, url, workers))
            runs.append([rate_at(done, m) for m in marks])
        rates = np.median(np.array(runs), axis=0)
        rows.append((f"{kind}, {workers} process(es)", rates))
    for name, rates in rows:
        print(f"    {name:<24}" + "".join(f"{r:8.1f}" for r in rates))
    print("    CPU time of the search process (SQLite, one process), per trial:")
    for first, last, cpu in cpu_per_trial(trials, tmp):
        print(
            f"    trials {first:5d}-{last:5d}: {cpu * 1e3:5.1f} ms "
            f"({1 / cpu:5.1f} trials/s on a free core)"
        )


def points(trials: list[optuna.trial.FrozenTrial], base: dict[str, int]) -> list[dict]:
    """The front of ``trials`` as trial summaries (duplicates out)."""
    seen, rows = set(), []
    for t in trials:
        if t.state.name != "COMPLETE" or "duplicate_of" in t.user_attrs:
            continue
        key = tuple(t.user_attrs["widths"])
        if key not in seen:
            seen.add(key)
            rows.append(trial_summary(t, base))
    objs = np.array([(-r["log_synexp"], r["params"], r["macs"]) for r in rows], dtype=float)
    return [r for r, k in zip(rows, pareto_mask(objs), strict=True) if k]


def as_array(front: list[dict]) -> np.ndarray:
    return np.array([(-t["log_synexp"], t["params_ratio"], t["macs_ratio"]) for t in front])


def coverage(front: list[dict], best: list[dict]) -> tuple[float, float]:
    """Median and 90th percentile over ``best`` of the smallest cost factor e at which
    ``front`` has a point no worse in log SynExp and within 1+e in params and MACs."""
    f = np.array([(t["params"], t["macs"], t["log_synexp"]) for t in front], dtype=float)
    es = []
    for t in best:
        ok = f[:, 2] >= t["log_synexp"] - 1e-9
        if not ok.any():
            es.append(np.inf)
            continue
        need = np.maximum(f[ok, 0] / t["params"], f[ok, 1] / t["macs"]).min()
        es.append(max(need - 1.0, 0.0))
    return float(np.median(es)), float(np.percentile(es, 90))


def samplers(names: list[str], trials: int, tmp: str) -> None:
    marks = sorted({m for m in (200, 1000, 2000, trials) if m <= trials})
    studies = {}
    print(f"(b) samplers on {MODEL} at 224x224, default ranges, seed 0, SQLite, one process:")
    for name in names:
        config = StudyConfig(model=MODEL, trials=trials, sampler=name, seed=0, study_name=name)
        studies[name] = run(config, f"sqlite:///{tmp}/b_{name}.db")
    attrs = next(iter(studies.values())).user_attrs
    base = {"params": attrs["base_params"], "macs": attrs["base_macs"]}
    by_number = {n: sorted(s.trials, key=lambda t: t.number) for n, s in studies.items()}
    fronts = {(n, m): points(by_number[n][:m], base) for n in names for m in marks}
    best = points([t for n in names for t in by_number[n]], base)
    ref_all = np.vstack([as_array(f) for f in fronts.values()])
    reference = np.array([ref_all[:, 0].max() + 1.0, 1.21, 1.21])
    print(
        f"    best front known: {len(best)} points (union of all); hypervolume reference "
        f"{np.round(reference, 2).tolist()}"
    )
    print(
        "    sampler  trials  trials/s  front stored  shown (step)      HV"
        "   coverage e: median  p90"
    )
    for name in names:
        done = finished(studies[name])
        for m in marks:
            front = fronts[(name, m)]
            eps = choose_eps(front)
            shown = len(thin_front(front, eps))
            hv = compute_hypervolume(as_array(front), reference)
            med, p90 = coverage(front, best)
            print(
                f"    {name:<8}{m:7d}{rate_at(done, m):10.1f}{len(front):14d}{shown:7d} "
                f"({eps:4.2f}){hv:12.2f}{med:16.3f}{p90:6.3f}"
            )


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


def plain(trials: int, tmp: str) -> None:
    config = StudyConfig(model=MODEL, trials=trials, seed=0, study_name="plain")
    ours_study = run(config, f"sqlite:///{tmp}/c.db")
    base = {
        "params": ours_study.user_attrs["base_params"],
        "macs": ours_study.user_attrs["base_macs"],
    }
    ours = as_array(points(ours_study.trials, base))
    space = WidthSpace.from_timm(MODEL)
    values = plain_optuna_front(space, trials, config.ranges)
    other = np.array([[-s, p / space.params(), m / space.macs()] for s, p, m in values])
    both = np.vstack([ours, other])
    reference = np.array([both[:, 0].max() + 1.0, 1.21, 1.21])
    hv_ours = compute_hypervolume(ours, reference)
    hv_plain = compute_hypervolume(other, reference)
    hv_union = compute_hypervolume(both, reference)
    print(
        f"(c) fronts after {trials} trials, hypervolume in (-log SynExp, params ratio, MACs "
        f"ratio), reference {np.round(reference, 2).tolist()}:"
    )
    print(
        f"    widthsearch (qmc, one GP solve per trial): {len(ours):4d} points, HV {hv_ours:8.2f}"
    )
    print(
        f"    plain Optuna TPE (per-group multipliers):  {len(other):4d} points, HV {hv_plain:8.2f}"
    )
    print(f"    union: HV {hv_union:.2f} (ours covers {hv_ours / hv_union:.1%} of it)")
    print(f"    best log SynExp: ours {-ours[:, 0].min():+.2f}, plain {-other[:, 0].min():+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--samplers", default="qmc,random,nsga2,tpe")
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--plain-trials", type=int, default=200)
    parser.add_argument("--configs", default="sqlite1,sqlite2,journal1,journal2")
    parser.add_argument("--repeat", type=int, default=1, help="(a): median of this many runs")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in parts:
            throughput(args.trials, tmp, args.configs.split(","), args.repeat)
        if "b" in parts:
            samplers(args.samplers.split(","), args.trials, tmp)
        if "c" in parts:
            plain(args.plain_trials, tmp)


if __name__ == "__main__":
    main()
