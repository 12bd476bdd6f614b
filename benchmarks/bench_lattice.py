"""Seconds the exact lattice search takes: a 7x4 lattice (16,384 points, the size of the
Channel-Bench-Macro tables) and a 20x4 lattice (~1.1e12 points), over MACs, params and joint
budgets, on the CPU it runs on.

    uv run python benchmarks/bench_lattice.py [--time-limit 1] [--json]

The 7-variable lattice is resnet18 (32x32 input) with its 12 free groups tied to 7 variables
(each stage's blocks' inner widths one, each residual stream one); the 20-variable one is
resnet34's 20 free groups, untied. Choices 0.25x,0.5x,0.75x,1x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from widthsearch import WidthSpace
from widthsearch.solve import Budgets, best_point
from widthsearch.space.choices import GridSpec

CHOICES = "0.25x,0.5x,0.75x,1x"
RATIOS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
CASES = {
    "resnet18, 7 variables": (
        "resnet18",
        ["layer1.*", "layer2.0.conv2,layer2.1.conv1", "layer3.0.conv2,layer3.1.conv1", "layer4.*"],
    ),
    "resnet34, 20 variables": ("resnet34", []),
}


def run(time_limit: float) -> list[dict]:
    rows = []
    for label, (model, ties) in CASES.items():
        space = WidthSpace.from_timm(model, input_size=(3, 32, 32))
        lattice = GridSpec.parse(CHOICES, ties).resolve(space, min_width=0.1, max_width=1.0)
        best_point(space, Budgets(macs=space.macs() // 2), lattice)  # builds the relaxation
        for kind in ("macs", "params", "both"):
            for r in RATIOS:
                budgets = Budgets(
                    params=int(r * space.params()) if kind != "macs" else None,
                    macs=int((0.8 if kind == "both" else 1) * r * space.macs())
                    if kind != "params"
                    else None,
                )
                start = time.perf_counter()
                pick = best_point(space, budgets, lattice, time_limit=time_limit)
                rows.append(
                    {
                        "lattice": label,
                        "variables": len(lattice.classes),
                        "points": lattice.size,
                        "budget": kind,
                        "ratio": r,
                        "seconds": time.perf_counter() - start,
                        "method": pick.method,
                        "exact": pick.exact,
                        "nodes": pick.nodes,
                        "gap": pick.gap,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.time_limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for label in CASES:
        mine = [r for r in rows if r["lattice"] == label]
        secs = [r["seconds"] for r in mine]
        exact = sum(r["exact"] for r in mine)
        print(
            f"{label} ({mine[0]['points']:,} points): {exact}/{len(mine)} exact; seconds median "
            f"{statistics.median(secs):.3f}, max {max(secs):.3f}; largest gap "
            f"{max(r['gap'] for r in mine):.4f}"
        )
        for r in mine:
            print(
                f"  {r['budget']:>6} {r['ratio']:.1f}: {r['method']:<16} {r['seconds']:.3f} s "
                f"{r['nodes']:>7,} nodes  gap {r['gap']:.4f}"
            )


if __name__ == "__main__":
    main()
