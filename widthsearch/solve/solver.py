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

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from widthsearch.errors import GridError, InfeasibleBudgetError, WidthSearchError
from widthsearch.solve import baselines as _baselines
from widthsearch.solve.lattice import TIME_LIMIT, LatticePick, best_point
from widthsearch.solve.objectives import (
    DEFAULT_OBJECTIVE,
    Objective,
    get_objective,
    group_terms,
    score,
    weights,
)
from widthsearch.solve.program import (
    DEFAULT_MAX_WIDTH,
    DEFAULT_MIN_WIDTH,
    MODES,
    Budgets,
    Mode,
    SynExpProgram,
    objective_exponents,
)
from widthsearch.solve.rounding import checked_grid, round_widths, width_grid
from widthsearch.space.choices import GridSpec, WidthLattice
from widthsearch.space.cost import parts
from widthsearch.space.grid import check_bounds

if TYPE_CHECKING:
    from widthsearch.space.cost import Cost
    from widthsearch.space.groups import Group
    from widthsearch.space.width_space import WidthSpace

Strategy = Literal["best", "uniform", "random"]
STRATEGIES: tuple[Strategy, ...] = ("best", "uniform", "random")


@dataclass(frozen=True)
class Problem:
    """One request: budgets and everything that says what widths may answer them."""

    budgets: Budgets
    """Absolute budgets (:func:`~widthsearch.solve.budget.resolve_count` turns ratios into
    them); latency and memory budgets need their cost posynomials handed to :func:`solve`."""
    objective: str = DEFAULT_OBJECTIVE
    """What the widths maximize (:data:`~widthsearch.solve.objectives.OBJECTIVES`)."""
    mode: Mode = "preconfig"
    min_width: float = DEFAULT_MIN_WIDTH
    max_width: float | None = None
    """None: the mode's cap (PreCrop 1, PreConfig :data:`DEFAULT_MAX_WIDTH`)."""
    divisor: int = 8
    grid: GridSpec = GridSpec()
    """Width grid and ties; empty: the divisor grid within the bounds."""
    time_limit: float = TIME_LIMIT
    """Seconds the lattice search may take before it returns its best point and its gap."""
    top: int = 1
    """How many of the best lattice points to return, best first (grids only)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "mode": self.mode,
            "min_width": self.min_width,
            "max_width": self.max_width,
            "divisor": self.divisor,
            "grid": None if self.grid.empty else self.grid.to_dict(),
            "time_limit": self.time_limit,
            "top": self.top,
        }


@dataclass(frozen=True)
class Solution:
    """What a solve found and how, and what it decided on the way."""

    widths: tuple[int, ...]
    """Per group (fixed groups at their base)."""
    problem: Problem
    """The request as solved: bounds resolved (``max_width`` set), budgets as held."""
    strategy: Strategy
    method: str
    """How the widths were found, in words (``"geometric program, rounded"``, ``"enumeration"``,
    ``"branch and bound"``, ``"uniform multiplier 0.750x"``, ...)."""
    value: float | None
    """The objective at ``widths``, relative to the base widths (see
    :func:`~widthsearch.solve.objectives.score`)."""
    continuous: tuple[float, ...] | None = None
    """The continuous optimum per group (widths, not multipliers), where one was solved."""
    exact: bool = False
    """The widths are proven the best on their grid (a lattice search that finished)."""
    gap: float | None = None
    """Certified ``bound - objective`` of a lattice search (0 when exact)."""
    lattice: LatticePick | None = None
    lattice_size: int | None = None
    held: tuple[str, ...] = ()
    """Costs whose budgets the objective set (``synexp-held``), not the user."""
    decisions: tuple[str, ...] = ()
    """What the solve decided that the user should know, one sentence each."""
    seconds: Mapping[str, float] = field(default_factory=dict)
    ranked: tuple[tuple[int, ...], ...] = ()
    """The best ``problem.top`` points, best first (``ranked[0] == widths``)."""
    bounds: tuple[float, float] = (DEFAULT_MIN_WIDTH, DEFAULT_MAX_WIDTH)
    """The smallest and largest multiplier any group may take on the grid solved on."""


@dataclass(frozen=True)
class Resolved:
    """A problem as the chain passes it on: the request plus what has been decided."""

    space: WidthSpace
    problem: Problem
    costs: Mapping[str, Cost]
    objective: Objective
    strategy: Strategy = "best"
    max_width: float = DEFAULT_MAX_WIDTH
    lattice: WidthLattice | None = None
    grid: tuple[tuple[int, ...], ...] | None = None
    """The divisor grid (no lattice)."""
    held: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()

    @property
    def budgets(self) -> Budgets:
        return self.problem.budgets


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
    """A width grid or ties: the lattice of the grid spec on this width space."""

    def accepts(self, problem: Resolved) -> bool:
        return not problem.problem.grid.empty

    def apply(self, problem: Resolved) -> Resolved:
        p = problem.problem
        lattice = p.grid.resolve(
            problem.space, divisor=p.divisor, min_width=p.min_width, max_width=problem.max_width
        )
        return replace(problem, lattice=lattice)


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
        pick = best_point(
            space,
            p.budgets,
            resolved.lattice,
            costs=resolved.costs,
            time_limit=p.time_limit,
            score=separable,
        )
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
            seconds={"solve": pick.seconds, "round": 0.0},
            ranked=(pick.widths,),
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
