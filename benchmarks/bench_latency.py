"""Benchmark: how well the fitted latency model predicts and ranks, against MACs alone.

For each model, at its search input size (224x224 by default):

- a **fit set**: the width vectors a quick profile times (the base and random vectors,
  :func:`widthsearch.hardware.sample_widths`);
- a **test set**, grouped by MACs level (0.5x, 0.75x and 1x the base's MACs): at each level
  PreCrop, PreConfig with several parameter budgets and width caps, the uniform multiplier,
  and random width vectors scaled to that MACs level. Vectors of one level have equal MACs
  within a few percent, so MACs cannot tell them apart; latency can.

Both sets are timed in one interleaved run (:func:`widthsearch.hardware.time_widths`: median
of the runs, models in random order every round, the base in every chunk), so machine load
hits them alike. The latency model is fitted on the fit set alone (as ``widthsearch profile``
fits it) and judged on the test set: median absolute relative error (goal <= 10%) and the
Spearman rank correlation between predicted and measured latency among the vectors of each
MACs level, averaged over levels (goal >= 0.8). The same figures for MACs alone as the
predictor (``a·MACs + b``, fitted on the same fit set by the same non-negative least squares;
its ranking within a level is the ranking by MACs). And the same for a *roofline* form of the
same terms, each weight layer costing ``max(a·MACs, b·elements)`` rather than their sum, fitted
by non-linear least squares from the sum's coefficients: the design question of whether a max
per layer (one auxiliary variable per layer in the geometric program) predicts better.

    uv run python benchmarks/bench_latency.py [--models M ...] [--threads 1] [--json out.json]
    uv run python benchmarks/bench_latency.py --device cuda --batch-size 32 --quick --json gpu.json

On a shared CPU, pin threads (``--threads 1``) and read the ``noise`` column: the median
interquartile range of a vector's runs over their median.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time

import numpy as np
from scipy.stats import spearmanr

from widthsearch import WidthSpace
from widthsearch.hardware import (
    FEATURES,
    feature_values,
    fit_coefficients,
    op_terms,
    predict,
    sample_widths,
    time_widths,
)
from widthsearch.hardware.timing import current_device
from widthsearch.solve import solved_widths
from widthsearch.solve.baselines import uniform
from widthsearch.solve.program import Budgets
from widthsearch.solve.reconfigure import reconfigure
from widthsearch.solve.rounding import nearest, width_grid

MODELS = ("efficientnet_b0", "mobilenetv2_100", "mobilenetv3_large_100", "resnet50")


def roofline_row(space: WidthSpace, widths) -> dict:
    """Per weight layer its MACs and elements at ``widths``, and the summed other terms."""
    ops = op_terms(space)
    weight = [op for op in ops if op.kind != "other"]
    return {
        "macs_index": np.array([FEATURES.index(op.kind) for op in weight]),
        "elems_index": np.array(
            [
                FEATURES.index("elems_depthwise" if op.kind == "macs_depthwise" else "elems_conv")
                for op in weight
            ]
        ),
        "macs": np.array([float(op.macs(widths)) for op in weight]),
        "elems": np.array([float(op.elems(widths)) for op in weight]),
        "other": sum(float(op.elems(widths)) for op in ops if op.kind == "other"),
        "weights": sum(float(op.params(widths)) for op in weight),
        "ops": float(len(ops)),
    }


def roofline_predict(coef: np.ndarray, row: dict) -> float:
    per_layer = np.maximum(
        coef[row["macs_index"]] * row["macs"], coef[row["elems_index"]] * row["elems"]
    )
    return float(
        per_layer.sum()
        + coef[FEATURES.index("elems_other")] * row["other"]
        + coef[FEATURES.index("weights")] * row["weights"]
        + coef[FEATURES.index("ops")] * row["ops"]
    )


def fit_roofline(rows: list[dict], ms: list[float], start: list[float]) -> np.ndarray:
    """Non-negative coefficients of the roofline form, least squares on relative error."""
    from scipy.optimize import least_squares

    scale = np.array([max(abs(c), 1e-12) for c in start])
    y = np.asarray(ms)

    def residuals(z: np.ndarray) -> np.ndarray:
        coef = z * scale
        return np.array([roofline_predict(coef, r) for r in rows]) / y - 1

    z0 = np.array([1.0 if c > 0 else 0.0 for c in start])
    # terms the sum form dropped start small but free, so the max may use them
    z0 = np.where(z0 > 0, z0, 1e-3)
    fit = least_squares(residuals, z0, bounds=(0, np.inf))
    return fit.x * scale


def random_at_macs(space: WidthSpace, ratio: float, rng: random.Random) -> tuple[int, ...]:
    """Random per-group factors, scaled (by bisection) to the largest vector within ``ratio``
    of the base's MACs, on the multiple-of-8 grid."""
    grid = width_grid(space, divisor=8, min_width=0.1, max_width=2.0)
    e = [math.exp(rng.uniform(math.log(0.5), math.log(2.0))) for _ in space.groups]
    budget = ratio * space.macs()

    def at(s: float) -> tuple[int, ...]:
        return tuple(
            nearest(grid[g.id], min(2.0, max(0.1, s * f)) * g.width)
            for g, f in zip(space.groups, e, strict=True)
        )

    lo, hi = 0.05, 4.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if space.macs(at(mid)) <= budget else (lo, mid)
    return at(lo)


def test_vectors(
    space: WidthSpace, levels: tuple[float, ...], randoms: int, seed: int
) -> list[tuple[str, float, tuple[int, ...]]]:
    """(description, MACs level, widths) of the test set."""
    rng = random.Random(seed + 1000)
    out = []
    macs0, params0 = space.macs(), space.params()
    for level in levels:
        budget = math.floor(level * macs0)
        if level < 1:
            r = reconfigure(space, macs=budget, mode="precrop", baselines=())
            out.append((f"precrop macs {level}", level, r.widths))
        else:
            out.append(("base", level, space.base_widths))
        for params, max_w, min_w in (
            (None, 2.0, 0.1),
            (0.8, 2.0, 0.1),
            (None, 1.25, 0.1),
            (None, 1.5, 0.25),
        ):
            p = None if params is None else math.floor(params * level * params0)
            try:
                r = reconfigure(
                    space, macs=budget, params=p, max_width=max_w, min_width=min_w, baselines=()
                )
            except Exception as exc:  # an infeasible mix: report and skip it
                print(f"  skip preconfig {level} params {params}: {exc}", file=sys.stderr)
                continue
            out.append((f"preconfig macs {level} params {params} max {max_w}", level, r.widths))
        grid = width_grid(space, divisor=8, min_width=0.1, max_width=2.0)
        u = uniform(space, Budgets(macs=budget), grid, min_width=0.1, max_width=2.0)
        if u.widths is not None:
            out.append((f"uniform macs {level}", level, u.widths))
        for k in range(randoms):
            out.append((f"random macs {level} #{k}", level, random_at_macs(space, level, rng)))
    return out


def bench_model(name: str, args: argparse.Namespace, device) -> dict:
    space = WidthSpace.from_timm(name, input_size=args.input_size)
    start = time.perf_counter()
    fit_w = sample_widths(space, args.fit, seed=args.seed, solved_widths=solved_widths)
    tests, seen = [], set(fit_w)
    for t in test_vectors(space, tuple(args.levels), args.randoms, args.seed):
        if t[2] not in seen:  # the uniform multiplier at 1x is the base, for instance
            seen.add(t[2])
            tests.append(t)
    widths = fit_w + [w for _, _, w in tests]
    print(f"{name}: timing {len(fit_w)} fit + {len(tests)} test vectors", file=sys.stderr)
    timed = time_widths(space, widths, device, runs=args.runs, progress=None)
    ms = [t for t, _ in timed]
    rows = [feature_values(space, w) for w in widths]
    macs = [space.macs(w) for w in widths]
    n = len(fit_w)
    ours = fit_coefficients(rows[:n], ms[:n])
    by_macs = fit_coefficients([[m, 1.0] for m in macs[:n]], ms[:n])
    roof_rows = [roofline_row(space, w) for w in widths]
    # terms the sum dropped start where they would add about 1% to the latency
    means = np.asarray(rows[:n]).mean(axis=0)
    init = [
        c if c > 0 else (0.01 * float(np.mean(ms[:n])) / m if m > 0 else 0.0)
        for c, m in zip(ours, means, strict=True)
    ]
    roof = fit_roofline(roof_rows[:n], ms[:n], init)
    results = []
    for (desc, level, w), t, r, m, (_, s), rr in zip(
        tests, ms[n:], rows[n:], macs[n:], timed[n:], roof_rows[n:], strict=True
    ):
        results.append(
            {
                "vector": desc,
                "level": level,
                "macs_ratio": m / space.macs(),
                "measured_ms": t,
                "predicted_ms": predict(ours, r),
                "macs_predicted_ms": predict(by_macs, [m, 1.0]),
                "roofline_predicted_ms": roofline_predict(roof, rr),
                "spread": s,
                "widths": list(w),
            }
        )
    err = [abs(x["predicted_ms"] / x["measured_ms"] - 1) for x in results]
    err_m = [abs(x["macs_predicted_ms"] / x["measured_ms"] - 1) for x in results]
    err_r = [abs(x["roofline_predicted_ms"] / x["measured_ms"] - 1) for x in results]
    rho, rho_m, rho_r = {}, {}, {}
    for level in args.levels:
        sel = [x for x in results if x["level"] == level]
        if len(sel) >= 3:
            meas = [x["measured_ms"] for x in sel]
            rho[level] = float(spearmanr([x["predicted_ms"] for x in sel], meas).statistic)
            rho_m[level] = float(spearmanr([x["macs_ratio"] for x in sel], meas).statistic)
            rho_r[level] = float(
                spearmanr([x["roofline_predicted_ms"] for x in sel], meas).statistic
            )
    return {
        "model": name,
        "input_size": list(space.input_size),
        "base_ms": ms[0],
        "fit_vectors": n,
        "test_vectors": len(results),
        "median_abs_error": statistics.median(err),
        "macs_median_abs_error": statistics.median(err_m),
        "roofline_median_abs_error": statistics.median(err_r),
        "roofline_spearman": statistics.mean(v for v in rho_r.values() if not math.isnan(v)),
        "roofline_coefficients": [float(c) for c in roof],
        "spearman_by_level": rho,
        "macs_spearman_by_level": rho_m,
        "spearman": statistics.mean(v for v in rho.values() if not math.isnan(v)),
        "macs_spearman": statistics.mean(v for v in rho_m.values() if not math.isnan(v)),
        "noise": statistics.median(s for _, s in timed),
        "seconds": time.perf_counter() - start,
        "coefficients": ours,
        "tests": results,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--input-size", type=int, nargs=3, default=[3, 224, 224])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--fit", type=int, default=24, help="fit-set vectors per model")
    p.add_argument("--randoms", type=int, default=2, help="random test vectors per MACs level")
    p.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    p.add_argument("--runs", type=int, default=15, help="timed runs per vector")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="fewer vectors and runs (about a minute)")
    p.add_argument("--json", metavar="PATH", help="write all figures and timings as JSON")
    args = p.parse_args()
    if args.quick:
        args.fit, args.randoms, args.levels, args.runs = 12, 1, [0.5, 1.0], 5
    device = current_device(
        args.device, threads=args.threads, batch_size=args.batch_size, dtype=args.dtype
    )
    print(f"device: {device.describe()}", file=sys.stderr)
    out = [bench_model(name, args, device) for name in args.models]
    print(f"\n{device.describe()}; latency model fitted on {args.fit} random vectors per model")
    print(
        f"{'model':24s} {'base ms':>8s} {'tests':>5s} {'err ours':>8s} {'err MACs':>8s} "
        f"{'rho ours':>8s} {'rho MACs':>8s} {'noise':>6s} {'err roof':>8s} {'rho roof':>8s}"
    )
    for r in out:
        print(
            f"{r['model']:24s} {r['base_ms']:8.2f} {r['test_vectors']:5d} "
            f"{100 * r['median_abs_error']:7.1f}% {100 * r['macs_median_abs_error']:7.1f}% "
            f"{r['spearman']:8.2f} {r['macs_spearman']:8.2f} {100 * r['noise']:5.0f}% "
            f"{100 * r['roofline_median_abs_error']:7.1f}% {r['roofline_spearman']:8.2f}"
        )
    summary = {
        "median_abs_error": statistics.median(r["median_abs_error"] for r in out),
        "macs_median_abs_error": statistics.median(r["macs_median_abs_error"] for r in out),
        "spearman": statistics.mean(r["spearman"] for r in out),
        "macs_spearman": statistics.mean(r["macs_spearman"] for r in out),
        "roofline_median_abs_error": statistics.median(r["roofline_median_abs_error"] for r in out),
        "roofline_spearman": statistics.mean(r["roofline_spearman"] for r in out),
    }
    print(
        f"{'all (median / mean)':24s} {'':8s} {'':5s} {100 * summary['median_abs_error']:7.1f}% "
        f"{100 * summary['macs_median_abs_error']:7.1f}% {summary['spearman']:8.2f} "
        f"{summary['macs_spearman']:8.2f} {'':6s} "
        f"{100 * summary['roofline_median_abs_error']:7.1f}% {summary['roofline_spearman']:8.2f}"
    )
    print(
        "err: median |predicted / measured - 1| on the test vectors; rho: Spearman rank "
        "correlation of predicted (MACs: MACs) and measured latency among vectors of equal "
        "MACs, mean over MACs levels; noise: median IQR / median of a vector's runs; roof: "
        "the same terms as a roofline, max(compute, traffic) per weight layer"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device.to_dict(), "summary": summary, "models": out}, f, indent=1)


if __name__ == "__main__":
    main()
