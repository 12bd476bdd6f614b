"""The best points of a width lattice under every budget: exact, or with a certified gap.

A :class:`~widthsearch.space.choices.WidthLattice` gives each decision variable (a free group,
or a tied set of them) a few widths. Costs (params, MACs, activation memory, a fitted latency
model) are posynomials of degree at most two in the widths, so over the variables each one is
``c0 + Σ a_c v_c + Σ b_c v_c² + Σ q_cd v_c v_d`` with non-negative coefficients: this module
evaluates them on many points at once with numpy, in integers (scaled by the common denominator
of grouped convs' fractional coefficients) wherever the cost is exact, so a budget holds on the
lattice exactly as it holds on the realized model (:meth:`LatticeModel.check_exact
<widthsearch.solve._lattice_model.LatticeModel.check_exact>` checks every pick on the
posynomials themselves). A fitted latency model is a float and is held with a 1e-9 margin.

The objective is separable: ``Σ_g w_g log(w_g / base_g)`` with per-group weights ``w_g`` (the
default, SynExp's exponents :func:`~widthsearch.solve.program.objective_exponents`: for every
layer that reads one group this *is* log SynExp), or any ``score(group, widths) -> values`` a
caller hands in. The search (:func:`best_point`, :func:`best_points` for the best ``k``):

1. **enumeration** when the lattice has at most ``enumerate_limit`` points (1e5): every point,
   in batches, only the variables with more than one width varying; exact.
2. else the **Lagrangian bound**: the budgets are dualized and the integrality kept,
   ``g(λ) = max_v Σ_j T_j(v_j) - Σ_k λ_k (C_k(v)/B_k - 1)``, an upper bound on every fitting
   point for any ``λ >= 0``. The inner maximum is a max-sum problem over the graph of which
   variables' widths multiply in some cost; it is solved exactly by variable elimination
   (:mod:`~widthsearch.solve._maxsum`: ResNet, EfficientNet, MobileNet, RegNet and ConvNeXt
   graphs have treewidth 1-2; DenseNet's concatenations become sum variables, treewidth 2) for
   a batch of ``λ`` per pass, and ``min_λ g`` by cutting planes (:mod:`~widthsearch.solve.
   _lagrange`).
3. **incumbents**: the relaxation rounded, repaired and filled (today's rounding), and the
   Lagrangian's maximizer repaired, each improved by local search over 1- and 2-variable moves
   (:mod:`~widthsearch.solve._local`).
4. **passes** of a dynamic program over the same elimination order that keeps every partial
   point whose Lagrangian bound is above a threshold ``θ`` (:mod:`~widthsearch.solve._core`),
   with ``θ`` falling from just below the bound towards the best point found: a pass that
   finds points above ``θ`` has found the best ones (nothing above ``θ`` was dropped), one that
   finds none proves that no point is above ``θ``. Where no elimination order fits the table
   limit the plan relaxes products and branch and bound over Lagrangian bounds searches
   instead (:mod:`~widthsearch.solve._branch`).

A pick is ``exact`` when its objective is within :data:`TOLERANCE` (1e-6, log objective) of
``bound``: the Lagrangian bound, lowered by every pass that found nothing above its threshold
(for the k-th pick: a bound on every point outside the list). With ``gap_tolerance`` the search
stops once the gap is at most that (``status`` "certified"); past ``time_limit`` seconds it
returns the best points found with the bound it has proved (``status`` "best found"). The
geometric program's continuous relaxation (:mod:`~widthsearch.solve._relaxation`) is solved
too, for the widths it would pick (``relaxed``) and as a starting point; its bound is reported
as ``relaxed_objective`` but is not the one the gap is measured against.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from widthsearch.errors import InfeasibleBudgetError, SolverError
from widthsearch.solve._branch import TOLERANCE
from widthsearch.solve._lattice_model import LatticeModel, Score, enumerate_top, greedy
from widthsearch.solve._maxsum import MaxSum
from widthsearch.solve._relaxation import Relaxation, Relaxed
from widthsearch.solve._search import search
from widthsearch.solve.program import Budgets, cost_label, describe_cost, objective_exponents

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.space.choices import WidthLattice
    from widthsearch.space.cost import Cost
    from widthsearch.space.width_space import WidthSpace

ENUMERATE_LIMIT = 100_000
LEAF_LIMIT = 4_096
TIME_LIMIT = 1.0
GAP_TOLERANCE = 0.0
"""Default ``gap_tolerance``: prove the pick optimal (up to :data:`TOLERANCE`)."""


@dataclass(frozen=True)
class LatticePick:
    """The lattice point a search picked, how good it is known to be, and how it was found."""

    widths: tuple[int, ...]
    """Per group (fixed groups at their base)."""
    objective: float
    """The lattice objective at ``widths`` (default: separable log SynExp, 0 at base)."""
    bound: float
    """An upper bound on the objective of the lattice's best point (for rank ``k``: of its
    k-th best): the Lagrangian bound, lowered by every pass that found nothing above its
    threshold. ``objective`` when exact."""
    exact: bool
    """``bound - objective`` is at most :data:`TOLERANCE`: no point is better (by more)."""
    method: str
    """``"enumeration"``, ``"dynamic programming"`` (the Lagrangian search) or ``"branch and
    bound"`` (its fallback where products had to be relaxed); :attr:`status` says how far it
    got."""
    nodes: int
    """The work done: points enumerated, partial points the passes of the dynamic program
    kept, or branch-and-bound nodes bounded."""
    seconds: float
    points: int
    """Size of the lattice."""
    relaxations: int = 0
    """Continuous relaxations solved (1 when ``relaxed`` is there)."""
    relaxed: tuple[float, ...] | None = None
    """The geometric program's relaxation: widths per group (continuous), when it was solved."""
    relaxed_objective: float | None = None
    """The relaxation's optimum: an upper bound on every lattice point, usually looser than
    ``bound``."""
    note: str = ""
    rank: int = 1
    """1 for the best point; ``k`` for the k-th best (:func:`best_points`)."""
    gap_tolerance: float = 0.0
    """The search stopped once every other point was proved at most this much better."""
    complete: bool = True
    """The search closed (exact, or within ``gap_tolerance``) rather than running out of time."""
    lagrangian_bound: float | None = None
    """The Lagrangian bound of the whole lattice (the root of the search), when it was needed."""

    @property
    def status(self) -> str:
        """``"exact"``, ``"certified"`` (within ``gap_tolerance``, closed) or ``"best found"``
        (the time limit stopped the search)."""
        if self.exact:
            return "exact"
        return "certified" if self.complete else "best found"

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
            "rank": self.rank,
            "status": self.status,
            "gap_tolerance": self.gap_tolerance,
            "lagrangian_bound": self.lagrangian_bound,
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
    gap_tolerance: float = GAP_TOLERANCE,
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
            returns the group's term for an array of its widths.
        time_limit: seconds before the search stops with the best point so far.
        enumerate_limit: lattices with at most this many points are enumerated.
        leaf_limit: branch-and-bound nodes (the fallback where the plan relaxes products)
            with at most this many points are enumerated.
        relax: solve the geometric program's continuous relaxation (for ``relaxed`` and a
            starting point; log-linear objectives with non-negative weights only).
        gap_tolerance: stop once the pick is proved within this much (log objective) of the
            best lattice point; 0 proves it optimal (up to :data:`TOLERANCE`).

    Returns:
        The pick, its objective and bound, whether it is exact, and how it was found.

    Raises:
        InfeasibleBudgetError: the smallest lattice point exceeds a budget.
        SolverError: a cost of degree above two, or a budget without its cost model.
    """
    return best_points(
        space,
        budgets,
        lattice,
        k=1,
        costs=costs,
        weights=weights,
        score=score,
        time_limit=time_limit,
        enumerate_limit=enumerate_limit,
        leaf_limit=leaf_limit,
        relax=relax,
        gap_tolerance=gap_tolerance,
    )[0]


def best_points(
    space: WidthSpace,
    budgets: Budgets,
    lattice: WidthLattice,
    *,
    k: int = 1,
    costs: Mapping[str, Cost] | None = None,
    weights: Mapping[int, float] | Sequence[float] | None = None,
    score: Score | None = None,
    time_limit: float = TIME_LIMIT,
    enumerate_limit: int = ENUMERATE_LIMIT,
    leaf_limit: int = LEAF_LIMIT,
    relax: bool = True,
    gap_tolerance: float = GAP_TOLERANCE,
) -> list[LatticePick]:
    """The ``k`` best lattice points under every budget, best first (fewer when fewer fit).

    The same search as :func:`best_point` (which is ``best_points(..., k=1)[0]``), pruning
    against the k-th best point found instead of the best. Each pick's ``bound`` is an upper
    bound on the objective of the lattice's point of its rank, so a pick is ``exact`` when no
    point outside the list can beat it; equal objectives keep an arbitrary but fixed order.

    Raises:
        InfeasibleBudgetError: the smallest lattice point exceeds a budget.
        SolverError: a cost of degree above two, a budget without its cost model, or ``k < 1``.
    """
    import numpy as np

    start = time.perf_counter()
    if k < 1:
        raise SolverError(f"k={k}: ask for at least one lattice point (k=1)")
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
    root = None
    if (
        relax
        and wvec is not None
        and model.costs
        and min((wvec[c[0]] for c in model.classes), default=0.0) >= 0
    ):
        try:
            root = Relaxation.of(model).solve()
        except SolverError:  # the relaxation only informs; the search needs no part of it
            root = None
    domains = [np.arange(len(v)) for v in model.values]
    if lattice.size <= enumerate_limit:
        rows, objs, rest = enumerate_top(model, domains, k)
        out = []
        for rank, (row, obj) in enumerate(zip(rows, objs, strict=True), 1):
            widths = model.widths(row)
            model.check_exact(widths)
            bound = max(float(obj), rest)
            out.append(
                _pick(
                    model,
                    widths,
                    float(obj),
                    bound,
                    bound - obj <= TOLERANCE + 1e-9,
                    "enumeration",
                    lattice.size,
                    0,
                    root,
                    start,
                    rank=rank,
                    tolerance=gap_tolerance,
                )
            )
        return out
    starts = [_rounding(model, root)]
    plan = MaxSum.of(model)
    found = search(
        model,
        plan,
        starts,
        k=k,
        deadline=start + time_limit,
        leaf_limit=leaf_limit,
        tolerance=gap_tolerance,
    )
    cheap = sum(float(t.max()) for t in model.tables)
    ceiling = min(found.upper, cheap)  # the search's bound (each term its best, if lower)
    out = []
    for rank, (row, obj) in enumerate(found.points, 1):
        widths = model.widths(row)
        model.check_exact(widths)
        bound = max(obj, ceiling)
        if rank == 1:  # the passes for the best point alone bound every point
            bound = min(bound, max(obj, found.first_upper))
        exact = bound - obj <= TOLERANCE + 1e-9
        note = ""
        if not exact and found.complete:
            note = (
                f"certified within {bound - obj:.2g} (log objective) of the best lattice point "
                f"(gap tolerance {gap_tolerance:g}) after {found.nodes:,} nodes"
            )
        elif not exact:
            note = (
                f"time limit {time_limit:g} s reached after {found.nodes:,} nodes; the best "
                f"point so far is within {bound - obj:.4f} (log objective) of the best "
                "lattice point (the Lagrangian bound)"
            )
        out.append(
            _pick(
                model,
                widths,
                obj,
                bound,
                exact,
                found.method,
                found.nodes,
                0,
                root,
                start,
                note,
                rank=rank,
                tolerance=gap_tolerance,
                complete=found.complete,
                root_bound=found.root_bound,
            )
        )
    return out


def _rounding(model: LatticeModel, root: Relaxed | None) -> np.ndarray:
    """Today's rounding on the lattice: the relaxation's optimum (or the widest point) to the
    nearest widths, repaired and filled (:func:`~widthsearch.solve._lattice_model.greedy`)."""
    import numpy as np

    if root is not None:
        start = np.array(
            [int(np.argmin(np.abs(v - w))) for v, w in zip(model.values, root.widths, strict=True)]
        )
    else:
        start = np.array([len(v) - 1 for v in model.values])
    return greedy(model, start)


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
    *,
    rank: int = 1,
    tolerance: float = 0.0,
    complete: bool = True,
    root_bound: float | None = None,
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
        objective=float(objective),
        bound=float(bound),
        exact=bool(exact),
        method=method,
        nodes=nodes,
        seconds=time.perf_counter() - start,
        points=model.lattice.size,
        relaxations=relaxations + int(root is not None),
        relaxed=relaxed,
        relaxed_objective=None if root is None else root.bound,
        note=note,
        rank=rank,
        gap_tolerance=tolerance,
        complete=bool(complete),
        lagrangian_bound=None if root_bound is None else float(root_bound),
    )


__all__ = [
    "ENUMERATE_LIMIT",
    "GAP_TOLERANCE",
    "LEAF_LIMIT",
    "TIME_LIMIT",
    "TOLERANCE",
    "LatticePick",
    "Score",
    "best_point",
    "best_points",
]
