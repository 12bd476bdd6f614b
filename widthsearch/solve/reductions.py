"""The reductions every solve passes through: small steps, each with ``accepts`` / ``apply`` /
``invert`` (as cvxpy's ``reductions``), that decide what a :class:`~widthsearch.solve.problem.
Problem` means on a width space before a strategy answers it (see :mod:`widthsearch.solve.
solver`): the mode's bounds, the lattice or the divisor grid, PreCrop on a lattice, the held
budgets of an objective that holds them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from widthsearch.errors import GridError, WidthSearchError
from widthsearch.solve.objectives import get_objective
from widthsearch.solve.problem import STRATEGIES, Problem, Resolved, Solution, Strategy
from widthsearch.solve.program import DEFAULT_MAX_WIDTH, MODES, Budgets
from widthsearch.solve.rounding import checked_grid, width_grid
from widthsearch.space.cost import parts
from widthsearch.space.grid import check_bounds

if TYPE_CHECKING:
    from widthsearch.space.cost import Cost
    from widthsearch.space.groups import Group
    from widthsearch.space.width_space import WidthSpace


class Reduction(Protocol):
    """One step of the chain: ``apply`` it where it ``accepts``; ``invert`` maps the answer of
    the reduced problem back (most steps leave it as it is)."""

    def accepts(self, problem: Resolved) -> bool: ...

    def apply(self, problem: Resolved) -> Resolved: ...

    def invert(self, solution: Solution, problem: Resolved) -> Solution: ...


class _Step:
    def accepts(self, problem: Resolved) -> bool:
        return True

    def invert(self, solution: Solution, problem: Resolved) -> Solution:
        return solution


class ModeBounds(_Step):
    """The mode's cap on every multiplier, and bounds a grid can be made from.

    Raises:
        WidthSearchError: an unknown mode, or a PreCrop cap above 1.
        BoundsError: empty or too wide bounds.
    """

    def apply(self, problem: Resolved) -> Resolved:
        p = problem.problem
        if p.mode not in MODES:
            raise WidthSearchError(
                options=f"{{mode}} must be one of {', '.join(MODES)}, not '{p.mode}'"
            )
        if p.mode == "precrop":
            if p.max_width is not None and p.max_width > 1:
                raise WidthSearchError(
                    options=f"precrop only removes channels: {{max_width}} must be at most 1, "
                    f"not {p.max_width:g} ({{mode}}='preconfig' grows groups)"
                )
            cap = 1.0 if p.max_width is None else p.max_width
        else:
            cap = DEFAULT_MAX_WIDTH if p.max_width is None else p.max_width
        check_bounds(p.min_width, cap)
        return replace(problem, problem=replace(p, max_width=cap), max_width=cap)


class OnLattice(_Step):
    """A width grid or ties: the lattice of the grid spec on this width space. The solution
    says which groups an absolute list gave only the widths their bounds allow, and which
    groups' base width is not on their grid (the base itself is then no lattice point)."""

    def accepts(self, problem: Resolved) -> bool:
        return not problem.problem.grid.empty

    def apply(self, problem: Resolved) -> Resolved:
        p = problem.problem
        space = problem.space
        lattice = p.grid.resolve(
            space, divisor=p.divisor, min_width=p.min_width, max_width=problem.max_width
        )
        decisions = list(problem.decisions)
        if lattice.restricted:
            g = space.groups[lattice.restricted[0]]
            decisions.append(
                f"grid: {len(lattice.restricted)} groups keep only the listed widths within "
                f"their bounds ({p.min_width:g}x-{problem.max_width:g}x their base; e.g. group "
                f"{g.id}, {g.producer}, base {g.width}: {_short(lattice.grid[g.id])})"
            )
        off = lattice.off_base(space)
        if off and problem.strategy == "best":
            g = space.groups[off[0]]
            decisions.append(
                f"grid: the base width is not on the grid of {len(off)} of "
                f"{len(space.free_groups)} free groups (e.g. group {g.id}, {g.producer}, base "
                f"{g.width}: {_short(lattice.grid[g.id])}), so the base model is no lattice point"
            )
        return replace(problem, lattice=lattice, decisions=tuple(decisions))


def _short(widths: Sequence[int]) -> str:
    return ",".join(map(str, widths)) if len(widths) <= 6 else f"{widths[0]}..{widths[-1]}"


class OnDivisorGrid(_Step):
    """No grid: multiples of the divisor within the bounds; for the objective's optimum,
    checked so that the budgets decide something (:func:`~widthsearch.solve.rounding.
    checked_grid`; a control may well be the widest point)."""

    def accepts(self, problem: Resolved) -> bool:
        return problem.problem.grid.empty

    def apply(self, problem: Resolved) -> Resolved:
        p = problem.problem
        if problem.strategy != "best":
            grid = width_grid(
                problem.space,
                divisor=p.divisor,
                min_width=p.min_width,
                max_width=problem.max_width,
            )
            return replace(problem, grid=grid)
        grid = checked_grid(
            problem.space,
            p.budgets,
            divisor=p.divisor,
            min_width=p.min_width,
            max_width=problem.max_width,
            costs=problem.costs,
        )
        return replace(problem, grid=grid)


class PrecropLattice(_Step):
    """PreCrop on a lattice: each decision variable keeps the widths at or below the base of
    every group it sets; the solution says how many groups lost wider entries.

    Raises:
        GridError: a group with no lattice width at or below its base.
    """

    def accepts(self, problem: Resolved) -> bool:
        return problem.lattice is not None and problem.problem.mode == "precrop"

    def apply(self, problem: Resolved) -> Resolved:
        lattice = problem.lattice
        assert lattice is not None
        space = problem.space
        grid = list(lattice.grid)
        cut: list[Group] = []
        for members in lattice.classes:
            cap = min(space.groups[g].width for g in members)
            kept = tuple(w for w in grid[members[0]] if w <= cap)
            first = space.groups[members[0]]
            if not kept:
                raise GridError(
                    f"precrop only removes channels, but the grid gives group {first.id} "
                    f"({first.producer}, base {first.width}) no width at or below its base "
                    f"(smallest {grid[first.id][0]}); add smaller choices, or use --mode "
                    "preconfig"
                )
            if len(kept) < len(grid[first.id]):
                cut.append(first)
            for member in members:
                grid[member] = kept
        if not cut:
            return problem
        example = cut[0]
        decision = (
            f"precrop: the grid's widths above the base were left out for {len(cut)} of "
            f"{len(lattice.classes)} width variables (e.g. group {example.id}, "
            f"{example.producer}, base {example.width}); precrop only removes channels"
        )
        return replace(
            problem,
            lattice=replace(lattice, grid=tuple(grid)),
            decisions=(*problem.decisions, decision),
        )


class HoldUnbudgeted(_Step):
    """An objective that holds the unbudgeted cost (``synexp-held``): params or MACs, whichever
    has no budget, gets the cost of the largest continuous uniform multiplier within the given
    budgets and bounds (unchanged when both or neither have one)."""

    def accepts(self, problem: Resolved) -> bool:
        return problem.objective.hold

    def apply(self, problem: Resolved) -> Resolved:
        p = problem.problem
        budgets, held = hold_unbudgeted(
            problem.space, p.budgets, p.min_width, problem.max_width, problem.costs
        )
        if not held:
            return problem
        return replace(problem, problem=replace(p, budgets=budgets), held=held)

    def invert(self, solution: Solution, problem: Resolved) -> Solution:
        return replace(solution, held=problem.held)


CHAIN: tuple[Reduction, ...] = (
    ModeBounds(),
    OnLattice(),
    OnDivisorGrid(),
    PrecropLattice(),
    HoldUnbudgeted(),
)
"""The reductions every solve passes through, in order."""


def reduce(
    space: WidthSpace,
    problem: Problem,
    costs: Mapping[str, Cost] | None = None,
    *,
    strategy: Strategy = "best",
    chain: Sequence[Reduction] = CHAIN,
) -> tuple[Resolved, list[Reduction]]:
    """``problem`` through ``chain``: what it means on ``space`` for ``strategy``, and the
    steps applied (for :func:`solve` to invert). Raises what the steps raise."""
    if strategy not in STRATEGIES:
        raise WidthSearchError(
            f"unknown strategy '{strategy}'; choose from {', '.join(STRATEGIES)}"
        )
    check_problem(problem, costs)
    objective = get_objective(problem.objective)
    resolved = Resolved(space, problem, dict(costs or {}), objective, strategy)
    applied = []
    for step in chain:
        if step.accepts(resolved):
            resolved = step.apply(resolved)
            applied.append(step)
    return resolved, applied


def check_problem(problem: Problem, costs: Mapping[str, Cost] | None = None) -> None:
    """Fail on a request no solve can answer: no budget, a budget without its cost model, an
    unknown objective, fewer than one point.

    Raises:
        WidthSearchError: says which, and what to give.
    """
    limits = problem.budgets.limits()
    if all(b is None for b in limits.values()):
        raise WidthSearchError(options="give {budget}")
    have = {"params", "macs", *(costs or {})}
    missing = [n for n, b in limits.items() if b is not None and n not in have]
    if missing:
        what = "a latency model (a device profile)" if missing[0] == "latency" else "its model"
        raise WidthSearchError(f"a {missing[0]} budget needs {what}")
    get_objective(problem.objective)
    if problem.top < 1:
        raise WidthSearchError(options=f"{{top}} must be at least 1, not {problem.top}")


def hold_unbudgeted(
    space: WidthSpace,
    budgets: Budgets,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost],
) -> tuple[Budgets, tuple[str, ...]]:
    """``budgets`` with params or MACs, whichever has no budget, held at its cost under the
    largest continuous uniform multiplier within ``[min_width, max_width]`` that holds the
    given budgets (unchanged when both or neither have one), and the names of the costs held.

    The multiplier is continuous, not the largest uniform point of a coarse grid, which can lie
    far below the budget (0.25x, 0.5x, ...) and would hold the other cost far too tight.
    """
    missing = [n for n in ("params", "macs") if getattr(budgets, n) is None]
    if len(missing) != 1:
        return budgets, ()
    polys = {"params": space.param_cost, "macs": space.mac_cost, **costs}
    limits = {n: b for n, b in budgets.limits().items() if b is not None and n in polys}
    base = space.base_widths

    def cost(name: str, alpha: float) -> float:
        x = [1.0 if g.fixed else alpha for g in space.groups]
        return max(
            sum(
                c * math.prod(x[g] ** e for g, e in mono.items())
                for c, mono in p.in_multipliers(base)
            )
            for p in parts(polys[name])
        )

    lo, hi = min_width, max_width
    if not all(cost(n, lo) <= b for n, b in limits.items()):
        return budgets, ()  # infeasible: the solve's own check says so
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if all(cost(n, mid) <= b for n, b in limits.items()) else (lo, mid)
    name = missing[0]
    return budgets.replace(**{name: math.floor(cost(name, lo))}), (name,)


__all__ = [
    "CHAIN",
    "HoldUnbudgeted",
    "ModeBounds",
    "OnDivisorGrid",
    "OnLattice",
    "PrecropLattice",
    "Reduction",
    "check_problem",
    "hold_unbudgeted",
    "reduce",
]
