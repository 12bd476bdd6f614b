"""The best point of a width lattice under every budget: exact where the lattice allows.

A :class:`~widthsearch.space.choices.WidthLattice` gives each decision variable (a free group,
or a tied set of them) a few widths. Costs (params, MACs, activation memory, a fitted latency
model) are posynomials of degree at most two in the widths, so over the variables each one is
``c0 + Σ a_c v_c + Σ b_c v_c² + Σ q_cd v_c v_d``: this module evaluates them on many points at
once with numpy, in integers (scaled by the common denominator of grouped convs' fractional
coefficients) wherever the cost is exact, so a budget holds on the lattice exactly as it holds
on the realized model. A fitted latency model is a float and is held with a 1e-9 margin.

The objective is separable: ``Σ_g w_g log(w_g / base_g)`` with per-group weights ``w_g`` (the
default, SynExp's exponents :func:`~widthsearch.solve.program.objective_exponents`: for every
layer that reads one group this *is* log SynExp), or any ``score(group, widths) -> values`` a
caller hands in. The search (:func:`best_point`):

1. **enumeration** when the lattice has at most ``enumerate_limit`` points (1e5): every point,
   vectorized; exact;
2. else **branch and bound**, depth first, over the variables (most influential first): a node
   fixes some variables, filters the others' widths to those that still fit with everything
   else at its smallest (costs grow with every width), and is pruned by the cheap bound (each
   free variable at its best remaining width), then by the geometric program's continuous
   relaxation with the box narrowed to the node (log-linear objectives only); nodes with at
   most ``leaf_limit`` points left are enumerated. The incumbent starts from the relaxation
   rounded, repaired and filled; exact when the tree is exhausted;
3. past ``time_limit`` seconds, the best point so far (never worse than rounding and repair),
   marked inexact, with the gap to the root relaxation's bound.

Pruning keeps a node unless its bound is below the incumbent by more than the relaxation's
accuracy (1e-6 in log objective), so "exact" means the optimum up to that tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from widthsearch.errors import InfeasibleBudgetError, SolverError
from widthsearch.solve._branch import branch_and_bound
from widthsearch.solve._lattice_model import LatticeModel, Score, enumerate_best
from widthsearch.solve._relaxation import Relaxation, Relaxed
from widthsearch.solve.program import Budgets, cost_label, describe_cost, objective_exponents

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.space.choices import WidthLattice
    from widthsearch.space.cost import Cost
    from widthsearch.space.width_space import WidthSpace

ENUMERATE_LIMIT = 100_000
LEAF_LIMIT = 4_096
TIME_LIMIT = 1.0


@dataclass(frozen=True)
class LatticePick:
    """The lattice point a search picked, how good it is known to be, and how it was found."""

    widths: tuple[int, ...]
    """Per group (fixed groups at their base)."""
    objective: float
    """The lattice objective at ``widths`` (default: separable log SynExp, 0 at base)."""
    bound: float
    """An upper bound on the best lattice objective: ``objective`` when exact."""
    exact: bool
    method: str
    """``"enumeration"``, ``"branch and bound"`` or ``"rounding"`` (time limit reached)."""
    nodes: int
    """Points enumerated plus branch-and-bound nodes (relaxations solved in ``relaxations``)."""
    seconds: float
    points: int
    """Size of the lattice."""
    relaxations: int = 0
    relaxed: tuple[float, ...] | None = None
    """The root relaxation's widths per group (continuous), when it was solved."""
    relaxed_objective: float | None = None
    note: str = ""

    @property
    def gap(self) -> float:
        """``bound - objective``: 0 when exact."""
        return self.bound - self.objective

    def to_dict(self) -> dict[str, Any]:
        return {
            "widths": list(self.widths),
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "exact": self.exact,
            "method": self.method,
            "nodes": self.nodes,
            "relaxations": self.relaxations,
            "points": self.points,
            "seconds": self.seconds,
            "relaxed_objective": self.relaxed_objective,
            "note": self.note,
        }


def best_point(
    space: WidthSpace,
    budgets: Budgets,
    lattice: WidthLattice,
    *,
    costs: Mapping[str, Cost] | None = None,
    weights: Mapping[int, float] | Sequence[float] | None = None,
    score: Score | None = None,
    time_limit: float = TIME_LIMIT,
    enumerate_limit: int = ENUMERATE_LIMIT,
    leaf_limit: int = LEAF_LIMIT,
    relax: bool = True,
) -> LatticePick:
    """The lattice point that maximizes the objective under every budget.

    Args:
        space: the width space the lattice is of.
        budgets: absolute budgets; latency and memory need their posynomials in ``costs``.
        lattice: widths per group and tied sets (:meth:`GridSpec.resolve
            <widthsearch.space.choices.GridSpec.resolve>`).
        costs: latency/memory posynomials by name (a program's ``costs``; params and MACs are
            the space's own).
        weights: per-group weights ``w_g`` of the objective ``Σ_g w_g log(width_g / base_g)``
            (a sequence over all groups or a mapping); default SynExp's exponents.
        score: instead of ``weights``, any separable objective: ``score(group, widths)``
            returns the group's term for an array of its widths. No relaxation bounds it, so
            only enumeration and the cheap bound prune.
        time_limit: seconds before branch and bound stops with the best point so far.
        enumerate_limit: lattices with at most this many points are enumerated.
        leaf_limit: branch-and-bound nodes with at most this many points are enumerated.
        relax: solve the root relaxation even when enumerating (for its bound and widths).

    Returns:
        The pick, its objective and bound, whether it is exact, and how it was found.

    Raises:
        InfeasibleBudgetError: the smallest lattice point exceeds a budget.
        SolverError: a cost of degree above two, or a budget without its cost model.
    """
    import numpy as np

    start = time.perf_counter()
    if score is not None and weights is not None:
        raise SolverError("give the lattice objective as weights or as a score, not both")
    wvec: list[float] | None = None
    if score is None:
        given = objective_exponents(space) if weights is None else weights
        if isinstance(given, Mapping):
            wvec = [float(given.get(g.id, 0.0)) for g in space.groups]
        else:
            wvec = [float(w) for w in given]
    model = LatticeModel(space, lattice, budgets, costs, wvec, score)
    bottom = np.zeros(model.n, dtype=np.int64)
    _check_bottom(model, bottom)
    relaxation = None
    if wvec is not None and min(wvec[c[0]] for c in model.classes) >= 0 and model.costs:
        relaxation = Relaxation.of(model)
    root = None
    if relaxation is not None and (relax or lattice.size > enumerate_limit):
        top = np.array([v[-1] for v in model.values], dtype=float)
        root = relaxation.solve(np.array([v[0] for v in model.values], dtype=float), top)
    if lattice.size <= enumerate_limit:
        idx, obj = enumerate_best(model, [np.arange(len(v)) for v in model.values])
        assert idx is not None  # the smallest point fits
        widths = model.widths(idx)
        model.check_exact(widths)
        return _pick(model, widths, obj, obj, True, "enumeration", lattice.size, 0, root, start)
    found = branch_and_bound(
        model, relaxation, root, deadline=start + time_limit, leaf_limit=leaf_limit
    )
    widths = model.widths(found.idx)
    model.check_exact(widths)
    if found.complete:
        return _pick(
            model,
            widths,
            found.objective,
            found.objective,
            True,
            "branch and bound",
            found.nodes,
            found.relaxations,
            root,
            start,
        )
    bound = min(root.bound, found.cheap_bound) if root is not None else found.cheap_bound
    bound = max(bound, found.objective)
    note = (
        f"time limit {time_limit:g} s reached after {found.nodes:,} nodes; the best point so far "
        f"is within {bound - found.objective:.4f} (log objective) of the best lattice point"
    )
    return _pick(
        model,
        widths,
        found.objective,
        bound,
        False,
        "rounding",
        found.nodes,
        found.relaxations,
        root,
        start,
        note,
    )


def _check_bottom(model: LatticeModel, bottom: np.ndarray) -> None:
    """Fail when even the smallest lattice point exceeds a budget."""
    pts = model.points(bottom[None, :])
    widths = model.widths(bottom)
    for c in model.costs:
        if not c.fits(pts)[0]:
            base = c.poly(model.space.base_widths)
            low = c.poly(widths)
            limit = model.limits[c.name]
            raise InfeasibleBudgetError(
                f"{cost_label(c.name)} {limit / base:.3g}x ({describe_cost(c.name, limit)}) is "
                f"below the {low / base:.3g}x ({describe_cost(c.name, low)}) of the smallest "
                f"widths on the grid ({model.lattice.spec.describe()}); raise the budget or add "
                "smaller --choices"
            )


def _pick(
    model: LatticeModel,
    widths: tuple[int, ...],
    objective: float,
    bound: float,
    exact: bool,
    method: str,
    nodes: int,
    relaxations: int,
    root: Relaxed | None,
    start: float,
    note: str = "",
) -> LatticePick:
    relaxed = None
    if root is not None:
        full = [float(w) for w in model.space.base_widths]
        for j, c in enumerate(model.classes):
            for g in c:
                full[g] = float(root.widths[j])
        relaxed = tuple(full)
    return LatticePick(
        widths=widths,
        objective=objective,
        bound=bound,
        exact=exact,
        method=method,
        nodes=nodes,
        seconds=time.perf_counter() - start,
        points=model.lattice.size,
        relaxations=relaxations + int(root is not None),
        relaxed=relaxed,
        relaxed_objective=None if root is None else root.bound,
        note=note,
    )


__all__ = ["ENUMERATE_LIMIT", "LEAF_LIMIT", "TIME_LIMIT", "LatticePick", "Score", "best_point"]
