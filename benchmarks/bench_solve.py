"""Benchmark: parse + solve + round, first solve and re-solve, on the issue's three settings.

- efficientnet_b0 ``--same-flops`` (PreConfig)
- mobilenetv2_100 ``--params 0.5 --mode precrop``
- resnet50 ``--flops 0.5 --mode precrop``

"first solve" builds the geometric program and solves it (cvxpy compiles it then); "re-solve"
substitutes new budgets into the compiled program (budgets varied by a few percent so the
solver really works). Imports and timm model creation are outside the timings; parse is
``WidthSpace.from_module`` on a built model, at 224x224. Goals (issue 3): first solve <= 0.5 s,
re-solve <= 0.02 s, parse + solve + round < 1 s for efficientnet_b0.

    uv run python benchmarks/bench_solve.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cvxpy
import timm
import torch

from widthsearch import WidthSpace
from widthsearch.solve.program import Budgets, SynExpProgram
from widthsearch.solve.rounding import round_widths, width_grid

CASES = [
    ("efficientnet_b0 --same-flops", "preconfig", lambda s: Budgets(macs=s.macs())),
    ("mobilenetv2_100 --params 0.5 precrop", "precrop", lambda s: Budgets(params=s.params() // 2)),
    ("resnet50 --flops 0.5 precrop", "precrop", lambda s: Budgets(macs=s.macs() // 2)),
]


def run_case(case: str, mode: str, make_budgets, repeats: int) -> dict[str, float]:
    name = case.split()[0]
    model = timm.create_model(name)
    x = torch.zeros(1, 3, 224, 224)
    max_width = 2.0 if mode == "preconfig" else 1.0
    parse, first, resolve, rounding, total = [], [], [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        space = WidthSpace.from_module(model, x, name=name)
        t1 = time.perf_counter()
        budgets = make_budgets(space)
        program = SynExpProgram(space)
        sol = program.solve(budgets, min_width=0.1, max_width=max_width)
        t2 = time.perf_counter()
        grid = width_grid(space, divisor=8, min_width=0.1, max_width=max_width)
        round_widths(space, sol.multipliers, budgets, grid)
        t3 = time.perf_counter()
        parse.append(t1 - t0)
        first.append(t2 - t1)
        rounding.append(t3 - t2)
        total.append(t3 - t0)
        for scale in (0.97, 0.94, 1.0):
            b = Budgets(
                params=None if budgets.params is None else int(budgets.params * scale),
                macs=None if budgets.macs is None else int(budgets.macs * scale),
            )
            t = time.perf_counter()
            program.solve(b, min_width=0.1, max_width=max_width)
            resolve.append(time.perf_counter() - t)
    med = statistics.median
    return {
        "parse": med(parse),
        "first": med(first),
        "resolve": med(resolve),
        "round": med(rounding),
        "total": med(total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    # warm-up: first-call caches in cvxpy and torch, outside the timings
    run_case("resnet18", "precrop", lambda s: Budgets(params=s.params() // 2), 1)
    print(
        f"cvxpy {cvxpy.__version__} (Clarabel), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    header = f"{'case':<42}{'parse':>8}{'1st solve':>11}{'re-solve':>10}{'round':>8}{'total':>8}"
    print(header)
    for name, mode, budgets in CASES:
        r = run_case(name, mode, budgets, args.repeats)
        print(
            f"{name:<42}{r['parse']:>7.3f}s{r['first']:>10.3f}s{r['resolve']:>9.4f}s"
            f"{r['round']:>7.3f}s{r['total']:>7.3f}s"
        )


if __name__ == "__main__":
    main()
