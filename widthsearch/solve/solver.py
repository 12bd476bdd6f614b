"""The one solve: a budget mix in, widths out, on the divisor grid or on a width lattice.

Every command that turns budgets into widths calls :func:`solve`: ``reconfig``
(:func:`~widthsearch.solve.reconfigure.reconfigure`), every search trial, verification's
controls and the baselines. What a request means on a width space is decided here and nowhere
else, and the :class:`Solution` says what was decided (:attr:`Solution.decisions`), so that
every command tells its user the same thing.

A :class:`Problem` is the request: absolute budgets, the objective, the mode, width bounds and
the divisor, the width grid and ties, a time limit, and how many of the best points to return.
As in cvxpy's ``reductions``, a chain of small steps, each with ``accepts`` / ``apply`` /
``invert``, turns it into a problem one strategy can answer, and turns the answer back:

1. :class:`ModeBounds`: the mode's width cap (PreCrop at most 1x, PreConfig
   :data:`~widthsearch.solve.program.DEFAULT_MAX_WIDTH` unless given) and checked bounds;
2. :class:`OnLattice` / :class:`OnDivisorGrid`: the grid the widths live on: a lattice from the
   grid and ties (:meth:`~widthsearch.space.choices.GridSpec.resolve`), or the divisor grid
   within the bounds, checked so that the budgets decide something;
3. :class:`PrecropLattice`: PreCrop removes channels only, so each group keeps the lattice widths
   at or below its base (the same rule for ``reconfig``, search and verification);
4. :class:`HoldUnbudgeted`: an objective that holds the cost the user did not budget
   (``synexp-held``) gets that budget set, and the solution names it.

Then one **strategy** answers: ``"best"``, the objective's optimum (the geometric program
rounded onto the divisor grid, or the exact lattice search), ``"uniform"``, the largest uniform
width multiplier that holds every budget (timm's ``channel_multiplier``; the control of every
comparison), or ``"random"``, a random shape scaled into the budgets.

Example:
    >>> from widthsearch.solve.solver import Problem, solve
    >>> from widthsearch.solve.program import Budgets
    >>> sol = solve(space, Problem(Budgets(macs=space.macs())))  # doctest: +SKIP
    >>> sol.widths, sol.decisions  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from widthsearch.errors import InfeasibleBudgetError, WidthSearchError
from widthsearch.solve import baselines as _baselines
from widthsearch.solve.lattice import best_points
from widthsearch.solve.objectives import Objective, group_terms, score, weights
from widthsearch.solve.problem import STRATEGIES, Problem, Resolved, Solution, Strategy
from widthsearch.solve.program import SynExpProgram, objective_exponents
from widthsearch.solve.reductions import (
    CHAIN,
    HoldUnbudgeted,
    ModeBounds,
    OnDivisorGrid,
    OnLattice,
    PrecropLattice,
    Reduction,
    check_problem,
    hold_unbudgeted,
    reduce,
)
from widthsearch.solve.rounding import round_widths

if TYPE_CHECKING:
    from widthsearch.space.cost import Cost
    from widthsearch.space.width_space import WidthSpace


def solve(
    space: WidthSpace,
    problem: Problem,
    costs: Mapping[str, Cost] | None = None,
    *,
    strategy: Strategy = "best",
    seed: int = 0,
    shape_range: tuple[float, float] | None = None,
    program: SynExpProgram | None = None,
) -> Solution:
    """Widths for ``problem`` on ``space``: the one place budgets become widths.

    Args:
        space: the width space.
        problem: budgets, objective, mode, bounds, divisor, grid and ties, time limit, top K.
        costs: the posynomials of the latency and memory budgets, by name (params and MACs
            are the space's own).
        strategy: ``"best"`` (the objective's optimum), ``"uniform"`` (the largest uniform
            multiplier within every budget) or ``"random"`` (random shape ``seed``, its
            multipliers drawn log-uniformly in ``shape_range``, default the bounds, then
            scaled into the budgets).
        seed: the random shape's seed.
        shape_range: the random shape's multiplier range.
        program: a compiled program to reuse (by default one is built once per width space,
            costs and objective, and cached on the space).

    Returns:
        The widths, how they were found, the objective there, and what was decided.

    Raises:
        WidthSearchError: a request no solve can answer (and its subclasses: bounds, grids,
            infeasible budgets, a failed solver), with one line that says what to change.
    """
    start = time.perf_counter()
    resolved, applied = reduce(space, problem, costs, strategy=strategy)
    prepared = time.perf_counter() - start
    if strategy == "best":
        solution = _best(resolved, program)
    elif strategy == "uniform":
        solution = _uniform(resolved)
    else:
        solution = _random(resolved, seed, shape_range)
    for step in reversed(applied):
        solution = step.invert(solution, resolved)
    seconds = {"build": prepared, **solution.seconds}
    return replace(solution, decisions=resolved.decisions, seconds=seconds)


def _bounds(resolved: Resolved) -> tuple[float, float]:
    """The multiplier range of the grid solved on: the bounds on the divisor grid (and for
    groups no choice list covers), else the lattice's own range."""
    p = resolved.problem
    lattice = resolved.lattice
    if lattice is None or (p.grid.choices is None and not p.grid.groups):
        return p.min_width, resolved.max_width
    space = resolved.space
    ratios = [w / g.width for g in space.free_groups for w in lattice.grid[g.id]]
    return min(ratios), max(ratios)


def _best(resolved: Resolved, program: SynExpProgram | None) -> Solution:
    """The objective's optimum: exact on a lattice, the program rounded on the divisor grid."""
    space, p, obj = resolved.space, resolved.problem, resolved.objective
    synexp_weights = obj.log_weights is objective_exponents
    log_w, inv_w = weights(space, obj)
    value: float | None = None if synexp_weights else None
    if resolved.lattice is not None:
        separable = None if synexp_weights else group_terms(space, obj)
        picks = best_points(
            space,
            p.budgets,
            resolved.lattice,
            k=p.top,
            costs=resolved.costs,
            time_limit=p.time_limit,
            gap_tolerance=p.gap_tolerance,
            score=separable,
        )
        pick = picks[0]
        if not synexp_weights:
            value = score(space, obj, pick.widths)
        return Solution(
            widths=pick.widths,
            problem=p,
            strategy="best",
            method=pick.method,
            value=value,
            continuous=pick.relaxed,
            exact=pick.exact,
            gap=pick.gap,
            lattice=pick,
            lattice_size=pick.points,
            seconds={"solve": max(q.seconds for q in picks), "round": 0.0},
            ranked=tuple(q.widths for q in picks),
            ranked_picks=tuple(picks),
            bounds=_bounds(resolved),
        )
    if p.top > 1:
        raise WidthSearchError(
            options=f"the best {p.top} points need a width grid ({{choices}}); the divisor grid "
            "has one answer per budget"
        )
    assert resolved.grid is not None
    prog = compiled_program(space, resolved.costs, obj, program)
    solution = prog.solve(p.budgets, min_width=p.min_width, max_width=resolved.max_width)
    start = time.perf_counter()
    weights_ = None if synexp_weights else (log_w, inv_w)
    widths = round_widths(
        space, solution.multipliers, p.budgets, resolved.grid, resolved.costs, weights_
    )
    rounding = time.perf_counter() - start
    if not synexp_weights:
        value = score(space, obj, widths)
    continuous = tuple(x * g.width for x, g in zip(solution.multipliers, space.groups, strict=True))
    return Solution(
        widths=widths,
        problem=p,
        strategy="best",
        method="geometric program, rounded",
        value=value,
        continuous=continuous,
        seconds={"solve": solution.seconds, "round": rounding},
        ranked=(widths,),
        bounds=_bounds(resolved),
    )


def compiled_program(
    space: WidthSpace,
    costs: Mapping[str, Cost],
    objective: Objective,
    program: SynExpProgram | None = None,
) -> SynExpProgram:
    """``program`` where it fits ``costs`` and ``objective``, else the program for them,
    compiled once and kept on the space (a search re-solves it thousands of times)."""
    log_w, inv_w = weights(space, objective)
    minimizes = bool(objective.inverse_weights)
    wanted = inv_w if minimizes else log_w

    def fits(prog: SynExpProgram) -> bool:
        return (
            set(prog.costs) == {"params", "macs", *costs}
            and all(prog.costs[n] is c for n, c in costs.items())
            and prog.minimizes == minimizes
            and prog.objective_weights == [wanted[g] for g in prog.free]
        )

    if program is not None and fits(program):
        return program
    cache = cast(dict[Any, Any], space.__dict__)
    key = ("_program", objective.name, *sorted((n, id(c)) for n, c in costs.items()))
    found = cache.get(key)
    if found is None or not fits(found):
        if minimizes:
            found = SynExpProgram(space, costs=costs, inverse_weights=inv_w)
        elif objective.log_weights is objective_exponents:
            found = SynExpProgram(space, costs=costs)  # concatenations by AM-GM weights
        else:
            found = SynExpProgram(space, costs=costs, log_weights=log_w)
        cache[key] = found
    return found


def _baseline_solution(
    resolved: Resolved, strategy: Strategy, found: _baselines.Baseline, start: float
) -> Solution:
    """A uniform or random answer as a :class:`Solution`; fails when nothing fits.

    Raises:
        InfeasibleBudgetError: no multiplier or scale of the shape fits the budgets.
    """
    if found.widths is None:
        raise InfeasibleBudgetError(found.note)
    space, obj = resolved.space, resolved.objective
    widths = tuple(found.widths)
    return Solution(
        widths=widths,
        problem=resolved.problem,
        strategy=strategy,
        method=found.description,
        value=score(space, obj, widths),
        seconds={"solve": time.perf_counter() - start, "round": 0.0},
        ranked=(widths,),
        bounds=_bounds(resolved),
    )


def _uniform(resolved: Resolved) -> Solution:
    """The largest uniform multiplier whose widths on the grid hold every budget."""
    start = time.perf_counter()
    found = uniform_baseline(resolved)
    return _baseline_solution(resolved, "uniform", found, start)


def uniform_baseline(resolved: Resolved) -> _baselines.Baseline:
    """:func:`_uniform` as the :class:`~widthsearch.solve.baselines.Baseline` reports show
    (with the reason when no multiplier fits)."""
    p = resolved.problem
    if resolved.lattice is not None:
        return _baselines.uniform_lattice(
            resolved.space, p.budgets, resolved.lattice, costs=resolved.costs
        )
    assert resolved.grid is not None
    return _baselines.uniform(
        resolved.space,
        p.budgets,
        resolved.grid,
        min_width=p.min_width,
        max_width=resolved.max_width,
        costs=resolved.costs,
    )


def _random(resolved: Resolved, seed: int, shape_range: tuple[float, float] | None) -> Solution:
    """Random shape ``seed`` scaled into the budgets (:mod:`widthsearch.solve.baselines`)."""
    start = time.perf_counter()
    p = resolved.problem
    lo, hi = shape_range or (p.min_width, resolved.max_width)
    if resolved.lattice is not None:
        found = _baselines.random_lattice(
            resolved.space,
            p.budgets,
            resolved.lattice,
            seed,
            min_width=lo,
            max_width=hi,
            costs=resolved.costs,
        )
    else:
        assert resolved.grid is not None
        found = _baselines.random_widths(
            resolved.space,
            p.budgets,
            resolved.grid,
            seed,
            min_width=lo,
            max_width=hi,
            costs=resolved.costs,
        )
    return _baseline_solution(resolved, "random", found, start)


__all__ = [
    "CHAIN",
    "STRATEGIES",
    "HoldUnbudgeted",
    "ModeBounds",
    "OnDivisorGrid",
    "OnLattice",
    "PrecropLattice",
    "Problem",
    "Reduction",
    "Resolved",
    "Solution",
    "Strategy",
    "check_problem",
    "compiled_program",
    "hold_unbudgeted",
    "reduce",
    "solve",
    "uniform_baseline",
]
