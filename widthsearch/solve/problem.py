"""The one solve's request and answer: a :class:`Problem` (budgets and what widths may answer
them), the :class:`Solution`, and the :class:`Resolved` problem the reductions of
:mod:`widthsearch.solve.reductions` pass on (see :mod:`widthsearch.solve.solver`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from widthsearch.solve.lattice import GAP_TOLERANCE, TIME_LIMIT, LatticePick
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, Objective
from widthsearch.solve.program import DEFAULT_MAX_WIDTH, DEFAULT_MIN_WIDTH, Budgets, Mode
from widthsearch.space.choices import GridSpec, WidthLattice

if TYPE_CHECKING:
    from widthsearch.space.cost import Cost
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
    gap_tolerance: float = GAP_TOLERANCE
    """Stop the lattice search once the pick is proved within this much (log objective) of
    the best lattice point; 0: prove it the best."""

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
            "gap_tolerance": self.gap_tolerance,
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
    """The best ``problem.top`` points, best first (``ranked[0] == widths``; fewer where fewer
    fit)."""
    ranked_picks: tuple[LatticePick, ...] = ()
    """How each of ``ranked`` was found and how good it is known to be (lattices only)."""
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


__all__ = ["STRATEGIES", "Problem", "Resolved", "Solution", "Strategy"]
