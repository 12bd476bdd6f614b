"""From continuous multipliers to integer widths that hold every budget exactly.

Each free group gets a grid of allowed widths: multiples of ``step = lcm(divisor, multiple_of)``
(8 by default: fast on real hardware, and buildable for grouped convs) between ``min_width`` and
``max_width`` times its base width, never below one step, plus its base width (always buildable)
when the bounds contain 1 (:func:`width_grid`, from :mod:`widthsearch.space.grid`, re-exported
here). Every grid width is within the bounds; bounds that leave a group no width, or leave no
budget binding, are refused before solving (:func:`checked_grid`).

A continuous solution is rounded to the nearest grid width; then **repair** steps groups down,
cheapest in SynExp per unit of the violated budgets first, until every budget holds on the exact
integer cost model, and **fill** steps groups up, best SynExp gain per unit of budget first, while
every budget still holds, so the budget that rounding left over is not wasted.

Latency and memory budgets are held the same way, on the posynomials the program was built
with (``costs``): activation memory exactly (integer bytes), latency on the device's fitted
model, evaluated in full after the steps so that no floating-point drift lets it slip over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from widthsearch.errors import BoundsError, InfeasibleBudgetError, RoundingError, WidthSearchError
from widthsearch.solve.program import Budgets, cost_label, describe_cost
from widthsearch.solve.synexp import WEIGHT_KINDS, layer_density
from widthsearch.space.cost import parts
from widthsearch.space.grid import nearest, width_grid

if TYPE_CHECKING:
    from widthsearch.space.cost import Cost, Posynomial
    from widthsearch.space.width_space import WidthSpace


_Separable = tuple[Sequence[float], Sequence[float]]
"""Per-group log weights and inverse weights of a separable objective, by group id."""


class _Costs:
    """Exact costs of a width vector and their changes when one group moves.

    Built once per width space and set of costs (it does not depend on the budgets) and kept
    on the space.
    """

    def __init__(self, space: WidthSpace, extra: Mapping[str, Cost] | None = None) -> None:
        self.space = space
        self.given = dict(extra or {})
        costs = {"params": space.param_cost, "macs": space.mac_cost, **self.given}
        self.kind: dict[str, str] = {}
        """Constraint name (a cost, or ``name[i]`` for part ``i`` of a peak) -> cost name."""
        self.polys: dict[str, Posynomial] = {}
        for name, cost in costs.items():
            split = parts(cost)
            for i, part in enumerate(split):
                cname = name if len(split) == 1 else f"{name}[{i}]"
                self.kind[cname], self.polys[cname] = name, part
        self.involving = {
            name: {g.id: poly.involving(g.id) for g in space.groups}
            for name, poly in self.polys.items()
        }
        self.layers_of: dict[int, list] = {g.id: [] for g in space.groups}
        for lay in space.layers:
            if lay.kind in WEIGHT_KINDS:
                for g in set(lay.in_groups + lay.out_groups):
                    self.layers_of[g].append(lay)
        # groups whose step costs change when group g moves: they share a term or a layer
        self.neighbors: dict[int, set[int]] = {}
        for g in self.layers_of:
            near = {h for lay in self.layers_of[g] for h in lay.in_groups + lay.out_groups}
            for inv in self.involving.values():
                near |= {h for mono, _ in inv[g].terms for h, _ in mono}
            self.neighbors[g] = near | {g}

    @classmethod
    def of(cls, space: WidthSpace, extra: Mapping[str, Cost] | None = None) -> _Costs:
        extra = {n: p for n, p in (extra or {}).items() if n not in ("params", "macs")}
        # the space's instance dict caches derived models; it takes any key, not only names
        cache = cast(dict[Any, Any], space.__dict__)
        key = ("_rounding_costs", *sorted((n, id(p)) for n, p in extra.items()))
        cached = cache.get(key)
        if cached is None or any(cached.given[n] is not p for n, p in extra.items()):
            cached = cache[key] = cls(space, extra)
        return cached

    def delta(
        self, widths: list[int], g: int, new: int, separable: _Separable | None = None
    ) -> tuple[float, dict[str, int]]:
        """(change in the objective, change in each cost) when group ``g`` moves to ``new``.

        The objective is log SynExp, or the separable one of ``separable`` (per-group log and
        inverse weights, :func:`widthsearch.solve.objectives.weights`)."""
        base = self.space.base_widths
        old = widths[g]
        if separable is not None:
            a, b = separable[0][g], separable[1][g]
            d_s = a * (math.log(new) - math.log(old)) - b * (1 / new - 1 / old)
            before = {n: inv[g](widths) for n, inv in self.involving.items()}
            widths[g] = new
            after = {n: inv[g](widths) for n, inv in self.involving.items()}
            widths[g] = old
            return d_s, {n: after[n] - before[n] for n in after}
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
    costs: Mapping[str, Cost] | None = None,
    separable: _Separable | None = None,
) -> tuple[int, ...]:
    """Nearest grid widths, repaired into the budgets, then filled up to them.

    ``costs`` are the posynomials of the latency and memory budgets (a program's ``costs``).
    ``separable``: the objective's per-group log and inverse weights when it is not SynExp.

    Raises:
        RoundingError: even the smallest grid widths exceed a budget.
        WidthSearchError: a budget whose cost is not in ``costs``.
    """
    costs_ = _Costs.of(space, costs)
    given = {n: b for n, b in budgets.limits().items() if b is not None}
    missing = [n for n in given if n not in costs_.kind.values()]
    if missing:
        raise WidthSearchError(f"a {missing[0]} budget needs its cost model to round against")
    limits = {c: given[k] for c, k in costs_.kind.items() if k in given}
    limited = list(limits)
    return _repair_and_fill(costs_, multipliers, limits, limited, grid, separable)


def _repair_and_fill(
    costs: _Costs,
    multipliers: Sequence[float],
    limits: dict[str, float],
    limited: list[str],
    grid: Sequence[Sequence[int]],
    separable: _Separable | None = None,
) -> tuple[int, ...]:
    space = costs.space
    widths = [nearest(grid[g.id], multipliers[g.id] * g.width) for g in space.groups]
    index = [grid[g].index(w) for g, w in enumerate(widths)]
    free = [g.id for g in space.groups if len(grid[g.id]) > 1]
    totals = {n: poly(widths) for n, poly in costs.polys.items()}
    cache: dict[int, tuple[int, float, dict[str, int]]] = {}

    def step(g: int, direction: int) -> tuple[int, float, dict[str, int]] | None:
        """The move of group ``g`` one grid step in ``direction``, cached until a neighbor moves."""
        i = index[g] + direction
        if not 0 <= i < len(grid[g]):
            return None
        if g not in cache:
            cache[g] = (i, *costs.delta(widths, g, grid[g][i], separable))
        return cache[g]

    def apply(g: int, move: tuple[int, float, dict[str, int]]) -> None:
        i, _, d_c = move
        index[g], widths[g] = i, grid[g][i]
        for n in totals:
            totals[n] += d_c[n]
        for h in costs.neighbors[g]:
            cache.pop(h, None)

    while True:
        _repair(step, apply, free, totals, limits, limited)
        _fill(step, apply, cache, free, totals, limits, limited)
        exact = {n: poly(widths) for n, poly in costs.polys.items()}
        if all(exact[n] <= limits[n] for n in limited):
            return tuple(widths)
        totals.update(exact)  # floating-point drift of a fitted cost: repair on exact values
        cache.clear()


def _repair(step, apply, free, totals, limits, limited) -> None:
    """Step down, least SynExp lost per share of the exceeded budgets saved, until all hold."""
    while over := [n for n in limited if totals[n] > limits[n]]:
        best, best_score = None, math.inf
        for g in free:
            move = step(g, -1)
            if move is None:
                continue
            saved = sum(-move[2][n] / limits[n] for n in over)
            if saved > 0 and -move[1] / saved < best_score:
                best, best_score = (g, move), -move[1] / saved
        if best is None:
            names = ", ".join(
                f"{n} {describe_cost(n, totals[n])} > {describe_cost(n, limits[n])}" for n in over
            )
            raise RoundingError(
                options=f"the smallest widths on the grid still exceed the budget ({names}); "
                "lower {divisor} or {min_width}, or raise the budget"
            )
        apply(*best)


def _fill(step, apply, cache, free, totals, limits, limited) -> None:
    """Step up, most SynExp gained per share of the budgets used, while all budgets hold."""
    cache.clear()
    while True:
        best, best_score = None, 0.0
        for g in free:
            move = step(g, +1)
            if move is None:
                continue
            _, d_s, d_c = move
            # fitted (float) costs keep a hair of margin, so that drift cannot cross the budget
            if d_s <= 0 or any(
                totals[n] + d_c[n] > limits[n] * (1 if isinstance(limits[n], int) else 1 - 1e-9)
                for n in limited
            ):
                continue
            used = sum(max(d_c[n], 0) / limits[n] for n in limited)
            score = d_s / used if used > 0 else math.inf
            if best is None or score > best_score:
                best, best_score = (g, move), score
        if best is None:
            break
        apply(*best)


def check_budgets(
    space: WidthSpace,
    budgets: Budgets,
    grid: Sequence[Sequence[int]],
    *,
    divisor: int,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost] | None = None,
) -> None:
    """Fail unless the budgets decide something on ``grid``: the smallest widths fit every
    budget, and the widest do not fit them all (else the bounds alone would be the answer).

    ``costs``: the latency and memory posynomials of those budgets (a program's ``costs``).

    Raises:
        InfeasibleBudgetError: a budget is below what the smallest grid widths cost.
        BoundsError: every budget is at or above what the widest grid widths cost.
    """
    floor = tuple(g[0] for g in grid)
    top = tuple(g[-1] for g in grid)
    polys = {"params": space.param_cost, "macs": space.mac_cost, **(costs or {})}
    given = [
        (name, budget, polys[name], polys[name](space.base_widths))
        for name, budget in budgets.limits().items()
        if budget is not None and name in polys
    ]
    for name, budget, cost, base in given:
        if cost(floor) > budget:
            raise InfeasibleBudgetError(
                options=f"{cost_label(name)} {budget / base:.3g}x ({describe_cost(name, budget)}) "
                f"is below the {cost(floor) / base:.3g}x ({describe_cost(name, cost(floor))}) "
                f"reachable with {{min_width}}={min_width:g} on the multiple-of-{divisor} grid; "
                "raise the budget, or lower {min_width} or {divisor}"
            )
    if given and all(cost(top) <= budget for _, budget, cost, _ in given):
        costs_ = " and ".join(
            f"{cost_label(n)} {cost(top) / base:.3g}x" for n, _, cost, base in given
        )
        limits = " and ".join(f"{cost_label(n)} <= {b / base:.3g}x" for n, b, _, base in given)
        raise BoundsError(
            options=f"no budget binds: with every group at its widest ({{max_width}}="
            f"{max_width:g}, multiples of {divisor}) the model costs {costs_}, within {limits}, "
            "so the bounds alone would set the widths; lower the budget or raise {max_width} "
            "(above 1 needs {mode}='preconfig')"
        )


def checked_grid(
    space: WidthSpace,
    budgets: Budgets,
    *,
    divisor: int,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost] | None = None,
) -> tuple[tuple[int, ...], ...]:
    """:func:`width_grid`, checked by :func:`check_budgets`: the grid a solve rounds onto.

    Cheap (no solve), so callers check bounds and budgets before solving.
    """
    grid = width_grid(space, divisor=divisor, min_width=min_width, max_width=max_width)
    check_budgets(
        space,
        budgets,
        grid,
        divisor=divisor,
        min_width=min_width,
        max_width=max_width,
        costs=costs,
    )
    return grid


def round_on_grid(
    space: WidthSpace,
    multipliers: Sequence[float],
    budgets: Budgets,
    *,
    divisor: int,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost] | None = None,
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """The rounded widths of a solution and the grid they sit on (see :func:`checked_grid`).

    ``costs``: the latency and memory posynomials of those budgets (a program's ``costs``).

    Raises:
        BoundsError: the bounds leave a group no width, or leave the budgets nothing to decide.
        InfeasibleBudgetError: a budget is below what the smallest grid widths cost.
    """
    grid = checked_grid(
        space,
        budgets,
        divisor=divisor,
        min_width=min_width,
        max_width=max_width,
        costs=costs,
    )
    return round_widths(space, multipliers, budgets, grid, costs), grid


__all__ = [
    "RoundingError",
    "check_budgets",
    "checked_grid",
    "nearest",
    "round_on_grid",
    "round_widths",
    "width_grid",
]
