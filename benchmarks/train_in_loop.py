"""Benchmark: what training in the loop could gain at full length, from the ground-truth tables.

The route of ``--train-top K`` trains the objective's best K lattice points under the budgets
and keeps the best trained one. On Channel-Bench-Macro every configuration was trained (60
epochs, 3 seeds), so the route's ceiling at full training length is a lookup: for each budget,
take the one solve's best K points (:func:`widthsearch.solve.solver.solve` with ``top=K``, the
exact order by SynExp on the grid 0.25x..1x, PreCrop), measure each by **one seed** of the
table (what one training run would tell), keep the best measured one, and score it by the
3-seed mean against the best configuration within the budget (its regret, in top-1 points).
Each of the three seeds serves as the measurement in turn; the figures are their mean. Beside
it, the same with the 3-seed mean as the measurement (a perfect measurement: the route's limit
as K grows), and K=1, the objective's own pick.

    uv run python benchmarks/train_in_loop.py [--data DIR] [--json FILE]

The tables are read from ``--data`` (default as ``benchmarks/groundtruth.py``); never copied.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from groundtruth import (  # noqa: E402
    CHOICES,
    NETWORKS,
    budgets,
    default_data,
    load_table,
    parse,
    widths_code,
)

KS = (1, 2, 4, 8, 16, 32)


def top_codes(space, free, kind: str, value: int, k: int) -> list[str]:
    """The one solve's best ``k`` lattice points at the budget, best first, as table codes."""
    from widthsearch.solve.program import Budgets
    from widthsearch.solve.solver import Problem, solve
    from widthsearch.space.choices import GridSpec

    problem = Problem(
        Budgets(**{kind: value}), mode="precrop", grid=GridSpec.parse(CHOICES), top=k, time_limit=5
    )
    solution = solve(space, problem)
    codes = [widths_code(w, space, free) for w in solution.ranked]
    if any(c is None for c in codes):
        raise SystemExit("a best point off the table's grid")
    return [c for c in codes if c is not None]


def run_network(name: str, data: Path) -> dict[str, Any]:
    start = time.perf_counter()
    table = load_table(data / f"Results_{name}.json", name)
    space, free = parse(name)
    index = {c: i for i, c in enumerate(table.codes)}
    rows: dict[str, dict[str, Any]] = {}
    for kind in ("macs", "params"):
        regrets = {k: [] for k in KS}
        perfect = {k: [] for k in KS}
        found = []
        for b in (b for b in budgets(table, space, free) if b.kind == kind):
            ranked = [index[c] for c in top_codes(space, free, kind, b.value, max(KS))]
            assert all(b.mask[i] for i in ranked), "a best point outside its budget"
            best = table.acc[b.mask].max()
            found.append(len(ranked))
            for k in KS:
                pool = ranked[:k]
                for s in range(3):  # each seed as the one measurement, in turn
                    chosen = max(pool, key=lambda i, s=s: table.seeds[i, s])
                    regrets[k].append(best - table.acc[chosen])
                chosen = max(pool, key=lambda i: table.acc[i])
                perfect[k].append(best - table.acc[chosen])
        rows[kind] = {
            "budgets": len(found),
            "points_found_min": int(min(found)),
            "one_seed": {k: float(np.mean(v)) for k, v in regrets.items()},
            "one_seed_max": {k: float(np.max(v)) for k, v in regrets.items()},
            "three_seeds": {k: float(np.mean(v)) for k, v in perfect.items()},
        }
    return {"network": name, "rows": rows, "seconds": time.perf_counter() - start}


def format_network(res: dict[str, Any]) -> str:
    head = ["budgets", "measured by", *(f"K={k}" for k in KS)]
    lines = [
        f"{res['network']}: mean regret (top-1 points) of the best of the K best SynExp points, "
        f"PreCrop, grid {CHOICES} ({res['seconds']:.1f} s)",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for kind, r in res["rows"].items():
        for label, key in (("one seed", "one_seed"), ("3-seed mean", "three_seeds")):
            cells = [f"{r[key][k]:.3f}" for k in KS]
            lines.append(f"| {kind} ({r['budgets']}) | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="the channel-bench-macro folder")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args(argv)
    data = args.data or default_data()
    if not (data / "Results_ResNet.json").is_file():
        print(f"no Channel-Bench-Macro tables in {data}; give --data", file=sys.stderr)
        return 2
    results = [run_network(name, data) for name in NETWORKS]
    for res in results:
        print(format_network(res), end="\n\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
