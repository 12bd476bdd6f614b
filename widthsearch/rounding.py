"""From continuous multipliers to integer widths that hold every budget exactly.

Each free group gets a grid of allowed widths: multiples of ``step = lcm(divisor, multiple_of)``
(8 by default: fast on real hardware, and buildable for grouped convs), never below one step,
never above its cap, plus its base width, which is always buildable. A continuous solution is
rounded to the nearest grid width; then **repair** steps groups down, cheapest in SynExp per unit
of the violated budgets first, until every budget holds on the exact integer cost model, and
**fill** steps groups up, best SynExp gain per unit of budget first, while every budget still
holds, so the budget that rounding left over is not wasted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import WidthSearchError
from .synexp import WEIGHT_KINDS, layer_density

if TYPE_CHECKING:
    from .solve import Budgets
    from .space import WidthSpace


class RoundingError(WidthSearchError):
    """No width vector on the grid holds the budgets."""


def width_grid(
    space: WidthSpace, *, divisor: int, min_width: float, max_width: float
) -> tuple[tuple[int, ...], ...]:
    """Allowed widths per group (sorted); a fixed group allows only its base width."""
    if divisor < 1:
        raise WidthSearchError(f"divisor must be a positive integer, got {divisor}")
    grids = []
    for g in space.groups:
        if g.fixed:
            grids.append((g.width,))
            continue
        step = math.lcm(divisor, g.multiple_of)
        cap = max(g.width, math.floor(max_width * g.width + 1e-9))
        low = max(step, math.ceil(min_width * g.width / step - 1e-9) * step)
        values = set(range(low, cap + 1, step)) | {g.width}
        grids.append(tuple(sorted(values)))
    return tuple(grids)


def nearest(grid: Sequence[int], target: float) -> int:
    """The grid width closest to ``target`` (ties go down)."""
    return min(grid, key=lambda w: (abs(w - target), w))


@dataclass
class _Costs:
    """Exact costs of a width vector and their changes when one group moves."""

    space: WidthSpace
    budgets: Budgets

    def __post_init__(self) -> None:
        space = self.space
        self.polys = {
            "params": (space.param_cost, self.budgets.params),
            "macs": (space.mac_cost, self.budgets.macs),
        }
        self.involving = {
            name: {g.id: poly.involving(g.id) for g in space.groups}
            for name, (poly, _) in self.polys.items()
        }
        self.layers_of: dict[int, list] = {g.id: [] for g in space.groups}
        for lay in space.layers:
            if lay.kind in WEIGHT_KINDS:
                for g in set(lay.in_groups + lay.out_groups):
                    self.layers_of[g].append(lay)

    def totals(self, widths: Sequence[int]) -> dict[str, int]:
        return {name: poly(widths) for name, (poly, _) in self.polys.items()}

    def over(self, totals: dict[str, int]) -> list[str]:
        return [n for n, (_, b) in self.polys.items() if b is not None and totals[n] > b]

    def delta(self, widths: list[int], g: int, new: int) -> tuple[float, dict[str, int]]:
        """(change in log SynExp, change in each cost) when group ``g`` moves to ``new``."""
        base = self.space.base_widths
        old = widths[g]
        before_s = sum(math.log(layer_density(lay, widths, base)) for lay in self.layers_of[g])
        before_c = {n: inv[g](widths) for n, inv in self.involving.items()}
        widths[g] = new
        after_s = sum(math.log(layer_density(lay, widths, base)) for lay in self.layers_of[g])
        after_c = {n: inv[g](widths) for n, inv in self.involving.items()}
        widths[g] = old
        return after_s - before_s, {n: after_c[n] - before_c[n] for n in after_c}


def round_widths(
    space: WidthSpace,
    multipliers: Sequence[float],
    budgets: Budgets,
    grid: Sequence[Sequence[int]],
) -> tuple[int, ...]:
    """Nearest grid widths, repaired into the budgets, then filled up to them.

    Raises:
        RoundingError: even the smallest grid widths exceed a budget.
    """
    costs = _Costs(space, budgets)
    widths = [nearest(grid[g.id], multipliers[g.id] * g.width) for g in space.groups]
    free = [g.id for g in space.groups if len(grid[g.id]) > 1]
    totals = costs.totals(widths)

    # repair: step down, least SynExp lost per share of the exceeded budgets saved
    while over := costs.over(totals):
        best, best_score = None, math.inf
        for g in free:
            i = grid[g].index(widths[g])
            if i == 0:
                continue
            d_s, d_c = costs.delta(widths, g, grid[g][i - 1])
            saved = sum(-d_c[n] / costs.polys[n][1] for n in over)
            if saved > 0 and -d_s / saved < best_score:
                best, best_score = (g, grid[g][i - 1], d_c), -d_s / saved
        if best is None:
            names = ", ".join(f"{n} {totals[n]:,} > {costs.polys[n][1]:,}" for n in over)
            raise RoundingError(
                f"the smallest widths on the grid still exceed the budget ({names}); "
                "lower --divisor or --min-width, or raise the budget"
            )
        g, new, d_c = best
        widths[g] = new
        totals = {n: totals[n] + d_c[n] for n in totals}

    # fill: step up, most SynExp gained per share of the budgets used, while all budgets hold
    limited = [n for n, (_, b) in costs.polys.items() if b is not None]
    while True:
        best, best_score = None, 0.0
        for g in free:
            i = grid[g].index(widths[g])
            if i + 1 == len(grid[g]):
                continue
            d_s, d_c = costs.delta(widths, g, grid[g][i + 1])
            if d_s <= 0 or any(totals[n] + d_c[n] > costs.polys[n][1] for n in limited):
                continue
            used = sum(max(d_c[n], 0) / costs.polys[n][1] for n in limited)
            score = d_s / used if used > 0 else math.inf
            if best is None or score > best_score:
                best, best_score = (g, grid[g][i + 1], d_c), score
        if best is None:
            break
        g, new, d_c = best
        widths[g] = new
        totals = {n: totals[n] + d_c[n] for n in totals}
    return tuple(widths)


__all__ = ["RoundingError", "nearest", "round_widths", "width_grid"]
