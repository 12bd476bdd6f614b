"""The best lattice point on real backbones: method, exactness or certified gap, seconds, and the
log SynExp gained over plain rounding, per model, grid and budget.

    uv run python benchmarks/lattice.py [--json FILE] [--models NAME,...] [--time-limit S]
                                        [--k K] [--gap-tolerance G]

Each model is parsed at the CLI's default input (3x224x224) with ``WidthSpace.from_timm``, as
``reconfigure`` does; the lattice is ``GridSpec.parse(choices).resolve(space, ...)`` (one choice
list for every free group, no ties unless the case names some), and budgets are ratios of the
base model's params and MACs, rounded down as ``--params R`` / ``--macs R`` do. PreCrop cases
pass only choices at most 1x. Each row is one ``best_point`` call as the CLI makes it (the
geometric program's relaxation cache is cleared first, so its build counts). "rounding" is
today's rounding on the lattice: the relaxation's optimum rounded to the nearest width per
variable, repaired and filled (``greedy`` in ``widthsearch.solve._lattice_model``); "gain" is
the pick's log SynExp minus rounding's (both on the lattice objective).

With ``--k K`` each row asks for the best K points (``best_points``): "exact / gap" then says
how many of the K are proved and the largest gap, and "gain" is the best point's.

Output: a markdown table (models, free groups, variables, lattice size, budget, method, exact or
certified gap, seconds, nodes, gain), and with ``--json FILE`` the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
import traceback
from dataclasses import dataclass
from typing import Any

from widthsearch import WidthSpace
from widthsearch.solve import Budgets, best_point, resolve_count

try:  # the API before the best K
    from widthsearch.solve import best_points
except ImportError:  # pragma: no cover - the benchmark also runs on the commit before
    best_points = None
from widthsearch.space.choices import GridSpec

INPUT_SIZE = (3, 224, 224)
PRECONFIG_MAX_WIDTH = 2.0
MIN_WIDTH = 0.1

G5 = "0.5x,0.75x,1x,1.25x,1.5x"
G6 = "0.5x,0.75x,1x,1.25x,1.5x,2x"
G8 = "0.25x,0.5x,0.75x,1x,1.25x,1.5x,1.75x,2x"
PRECROP4 = "0.25x,0.5x,0.75x,1x"
PRECROP5 = "0.5x,0.625x,0.75x,0.875x,1x"
TIE_B2 = ("blocks.1.*.conv_pw", "blocks.2.*.conv_pw")


@dataclass(frozen=True)
class Case:
    model: str
    mode: str
    choices: str
    params: float | None
    macs: float | None
    ties: tuple[str, ...] = ()

    @property
    def budget(self) -> str:
        parts = []
        if self.params is not None:
            parts.append(f"params {self.params:g}")
        if self.macs is not None:
            parts.append(f"MACs {self.macs:g}")
        return " + ".join(parts)


CASES = [
    # the rows first, then more grids and budgets per model
    Case("efficientnet_b0", "preconfig", G5, None, 1.0),
    Case("efficientnet_b0", "preconfig", G5, 1.0, None),
    Case("efficientnet_b0", "preconfig", G6, 0.8, 0.8),
    Case("resnet50", "preconfig", G5, 1.0, 1.0),
    Case("resnet50", "preconfig", G5, None, 0.5),
    Case("resnet50", "preconfig", G8, 0.7, None),
    Case("mobilenetv3_large_100", "preconfig", G6, None, 1.0),
    Case("mobilenetv3_large_100", "preconfig", G6, 1.0, None),
    Case("mobilenetv3_large_100", "preconfig", G5, 0.8, 0.8),
    Case("regnety_016", "precrop", PRECROP4, None, 0.5),
    Case("regnety_016", "precrop", PRECROP4, 0.5, None),
    Case("regnety_016", "precrop", PRECROP5, 0.7, 0.6),
    Case("densenet121", "precrop", PRECROP5, 0.6, None),
    Case("densenet121", "precrop", PRECROP5, None, 0.6),
    Case("densenet121", "precrop", PRECROP4, 0.5, 0.5),
    Case("convnext_nano", "preconfig", "0.5x,0.75x,1x,1.25x", None, 1.0),
    Case("convnext_nano", "preconfig", "0.5x,0.75x,1x,1.25x", 0.8, None),
    Case("convnext_nano", "preconfig", G8, 0.7, 0.7),
    # our own choice: a 53-group EfficientNet and one tied grid
    Case("efficientnet_b2", "preconfig", G5, None, 1.0),
    Case("efficientnet_b2", "preconfig", G6, 0.7, 0.7),
    Case("efficientnet_b2", "preconfig", G8, 1.0, None, TIE_B2),
]


def _clear_relaxation_cache(space: WidthSpace) -> None:
    """Forget the lattice relaxation kept on ``space``, so each row pays for it as a CLI call."""
    cache: dict[Any, Any] = space.__dict__
    for key in [k for k in cache if isinstance(k, tuple) and k[:1] == ("_lattice_relaxation",)]:
        del cache[key]


def _rounding(space: WidthSpace, budgets: Budgets, lattice: Any) -> float:
    """Today's rounding on the lattice: the relaxation's optimum, nearest widths, repair, fill."""
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel, greedy
    from widthsearch.solve._relaxation import Relaxation
    from widthsearch.solve.program import objective_exponents

    exps = objective_exponents(space)
    weights = [float(exps.get(g.id, 0.0)) for g in space.groups]
    model = LatticeModel(space, lattice, budgets, None, weights, None)
    relaxation = Relaxation.of(model)
    try:  # the relaxation's solve took the box as arguments before the Lagrangian search
        root = relaxation.solve()
    except TypeError:
        low = np.array([v[0] for v in model.values], dtype=float)
        high = np.array([v[-1] for v in model.values], dtype=float)
        root = relaxation.solve(low, high)
    assert root is not None
    start = np.array(
        [int(np.argmin(np.abs(v - w))) for v, w in zip(model.values, root.widths, strict=True)]
    )
    idx = greedy(model, start)
    return float(model.objective(idx[None, :])[0])


def run(
    models: set[str] | None, time_limit: float | None, k: int = 1, tolerance: float | None = None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    spaces: dict[str, WidthSpace] = {}
    for case in CASES:
        if models and case.model not in models:
            continue
        if case.model not in spaces:
            spaces[case.model] = WidthSpace.from_timm(case.model, input_size=INPUT_SIZE)
        space = spaces[case.model]
        max_width = 1.0 if case.mode == "precrop" else PRECONFIG_MAX_WIDTH
        lattice = GridSpec.parse(case.choices, list(case.ties)).resolve(
            space, min_width=MIN_WIDTH, max_width=max_width
        )
        budgets = Budgets(
            params=None if case.params is None else resolve_count(case.params, space.params(), "p"),
            macs=None if case.macs is None else resolve_count(case.macs, space.macs(), "macs"),
        )
        row: dict[str, Any] = {
            "model": case.model,
            "mode": case.mode,
            "choices": case.choices,
            "ties": list(case.ties),
            "budget": case.budget,
            "groups": len(space.free_groups),
            "variables": len(lattice.classes),
            "log10_points": math.log10(lattice.size),
        }
        _clear_relaxation_cache(space)
        kwargs: dict[str, Any] = {} if time_limit is None else {"time_limit": time_limit}
        if tolerance is not None:
            kwargs["gap_tolerance"] = tolerance
        start = time.perf_counter()
        try:
            if k > 1:
                assert best_points is not None, "--k needs best_points"
                picks = best_points(space, budgets, lattice, k=k, **kwargs)
            else:
                picks = [best_point(space, budgets, lattice, **kwargs)]
            pick = picks[0]
        except Exception as exc:  # noqa: BLE001 - the benchmark records failures as rows
            row.update(
                method="error",
                error=f"{type(exc).__name__}: {exc}".splitlines()[0][:120],
                seconds=time.perf_counter() - start,
            )
            traceback.print_exc(limit=1)
            rows.append(row)
            print(_line(row), flush=True)
            continue
        seconds = time.perf_counter() - start
        row.update(
            method=pick.method,
            exact=pick.exact,
            gap=pick.gap,
            k=k,
            found=len(picks),
            exact_count=sum(p.exact for p in picks),
            largest_gap=max(p.gap for p in picks),
            status=getattr(pick, "status", None),
            seconds=seconds,
            nodes=pick.nodes,
            objective=pick.objective,
            bound=pick.bound,
            lagrangian_bound=getattr(pick, "lagrangian_bound", None),
            relaxed_objective=pick.relaxed_objective,
            on_grid=all(lattice.contains(p.widths) for p in picks),
            within=all(
                getattr(space, name)(p.widths) <= v
                for p in picks
                for name, v in budgets.limits().items()
                if v is not None
            ),
        )
        row["gain"] = pick.objective - _rounding(space, budgets, lattice)
        rows.append(row)
        print(_line(row), flush=True)
    return rows


HEADER = (
    "| model | free groups | variables | lattice | grid | budget | method | exact / gap | "
    "seconds | nodes | gain over rounding |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def _line(r: dict[str, Any]) -> str:
    grid = r["choices"] if r["mode"] == "preconfig" else f"PreCrop {r['choices']}"
    if r["ties"]:
        grid += f"; tie {' '.join(r['ties'])}"
    if r["method"] == "error":
        return (
            f"| {r['model']} | {r['groups']} | {r['variables']} | 10^{r['log10_points']:.1f} | "
            f"{grid} | {r['budget']} | error: {r['error']} | | {r['seconds']:.2f} | | |"
        )
    if r.get("k", 1) > 1:
        status = f"{r['exact_count']}/{r['found']} exact"
        if r["exact_count"] < r["found"]:
            status += f", gap <= {r['largest_gap']:.4f}"
    elif r["exact"]:
        status = "exact"
    else:
        status = f"gap {r['gap']:.4f}"
        if r.get("status"):  # "certified" or "best found" (the time limit)
            status = f"{r['status']}, {status}"
    return (
        f"| {r['model']} | {r['groups']} | {r['variables']} | 10^{r['log10_points']:.1f} | "
        f"{grid} | {r['budget']} | {r['method']} | {status} | {r['seconds']:.2f} | "
        f"{r['nodes']:,} | {r['gain']:+.4f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON to FILE")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--time-limit", type=float, help="best_point's time_limit (default its)")
    parser.add_argument("--k", type=int, default=1, help="ask for the best K points")
    parser.add_argument("--gap-tolerance", type=float, help="best_point's gap_tolerance")
    args = parser.parse_args()
    import cvxpy as cp  # warm the solver's import, which a CLI call pays once at start

    x = cp.Variable(pos=True)
    cp.Problem(cp.Maximize(x), [x <= 1]).solve(gp=True)
    print(f"# {platform.processor() or platform.machine()}, input {INPUT_SIZE}\n")
    print(HEADER, flush=True)
    models = set(args.models.split(",")) if args.models else None
    rows = run(models, args.time_limit, args.k, args.gap_tolerance)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
