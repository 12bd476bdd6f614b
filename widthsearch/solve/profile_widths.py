"""The width vectors the solver proposes for a latency profile to time.

Random width vectors reach the shapes SynExp picks (every expansion at its cap, say) only by
chance, yet those are the shapes a latency model is asked about. So a profile
(:mod:`widthsearch.hardware.profiling`) also times solutions of the program at random budgets and
caps. The solver sits above the hardware models it constrains, so this lives here and callers of
the profiler hand it down: ``make_profile(..., solved_widths=solved_widths)``.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from widthsearch.errors import WidthSearchError
from widthsearch.solve.program import Budgets, SynExpProgram
from widthsearch.solve.rounding import round_on_grid

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace


def solved_widths(space: WidthSpace, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``n`` width vectors the solver proposes: PreCrop and PreConfig at random MACs budgets
    (0.4-1.1x), with or without a params budget, and random width caps (1.2-2x): the shapes
    users deploy, which random vectors reach only by chance (every expansion at its cap).

    What a latency profile hands its width sampler
    (:func:`widthsearch.hardware.profiling.sample_widths`, ``solved_widths=``); draws that give
    an infeasible mix are skipped, so fewer than ``n`` may come back.
    """
    if n <= 0:
        return []
    rng = random.Random(seed + 7919)
    program = SynExpProgram(space)
    out: list[tuple[int, ...]] = []
    for _ in range(4 * n):
        if len(out) >= n:
            break
        mode = rng.choice(("precrop", "preconfig", "preconfig"))
        macs = rng.uniform(0.4, 1.1 if mode == "preconfig" else 0.95)
        params = rng.choice((None, rng.uniform(0.5, 1.2)))
        cap = 1.0 if mode == "precrop" else rng.uniform(1.2, 2.0)
        budgets = Budgets(
            params=None if params is None else math.floor(params * space.params()),
            macs=math.floor(macs * space.macs()),
        )
        try:
            sol = program.solve(budgets, min_width=0.1, max_width=cap)
            widths, _ = round_on_grid(
                space, sol.multipliers, budgets, divisor=8, min_width=0.1, max_width=cap
            )
        except WidthSearchError:  # an infeasible mix: draw another
            continue
        if widths not in out and widths != space.base_widths:
            out.append(widths)
    return out


__all__ = ["solved_widths"]
