"""The search of :mod:`widthsearch.solve.lattice` above enumeration size: a Lagrangian bound,
good points by local search, then passes of the dynamic program over falling thresholds.

1. **Bound.** Minimize the Lagrangian ``g(λ)`` over the budgets' multipliers
   (:class:`~widthsearch.solve._lagrange.Dual`): ``g* = min g`` bounds every lattice point.
2. **Incumbents.** Round the relaxation (or the widest point) and repair it, repair the
   Lagrangian's maximizer, and climb from each (:func:`~widthsearch.solve._local.climb`); for
   the best ``k``, add the fitting neighbours of the best points.
3. **Passes.** Every lattice point above a threshold ``θ = g* - depth``, by the dynamic
   program of :func:`~widthsearch.solve._core.points_above`, the depth growing from 1e-3 (4x,
   2x or 1.4x per pass, by how many partial points the last one kept) until ``θ`` reaches the
   k-th best point found plus the tolerance. A pass that finds nothing above ``θ`` lowers the
   certified bound to ``θ``; one that finds points has found the best ones (every point above
   ``θ`` was kept). The first passes are cheap (few partial points come within a small depth
   of the bound), and the last costs what the gap between the best point and the bound costs.
   A pass that would keep more than :data:`~widthsearch.solve._core.STATE_LIMIT` partial
   points is retried nearer the last threshold that closed; the time limit ends the search
   with the bound it has proved. For the best ``k`` the best point is closed alone first
   (where equal and dominated partial points merge), then the k best are listed.

Where the plan had to relax products (no elimination order within
:data:`~widthsearch.solve._maxsum.TABLE_LIMIT`), the partial points' costs would not be exact, so
branch and bound (:mod:`widthsearch.solve._branch`) searches instead. Private to the lattice
search.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from widthsearch.solve._branch import TOLERANCE, Incumbents, branch_and_bound
from widthsearch.solve._core import STATE_LIMIT, Prepared, points_above, prepare
from widthsearch.solve._lagrange import Dual
from widthsearch.solve._lattice_model import greedy
from widthsearch.solve._local import Moves, climb, neighbours

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel
    from widthsearch.solve._maxsum import MaxSum

FIRST_DELTA = 1e-3
"""The first pass looks this far (log objective) below the Lagrangian bound."""
CHEAP_PASS = 2_000
"""A pass that kept fewer partial points than this lets the next look 4x as deep below the
bound; fewer than 10x this, 2x; else 1.4x."""
ROOT_ROUNDS = 30
"""Cutting-plane rounds for the root's multipliers."""


@dataclass(frozen=True)
class Searched:
    """What a search found."""

    points: list[tuple[tuple[int, ...], float]]
    """The best k points found (value indices, objective), best first."""
    upper: float
    """A bound on the objective of every point not in ``points``."""
    complete: bool
    """The search closed (every point is known to be at most ``upper``, within tolerance)."""
    method: str
    """``"dynamic programming"`` or ``"branch and bound"``."""
    nodes: int
    """Partial points kept by the passes (or branch-and-bound nodes)."""
    passes: int
    """Passes of the dynamic program over thresholds (0 for branch and bound)."""
    root_bound: float
    """The Lagrangian bound of the whole lattice."""
    first_upper: float = math.inf
    """A bound on every point's objective (so on the first of ``points``): the ceiling of the
    passes for the best point alone."""


def search(
    model: LatticeModel,
    plan: MaxSum,
    starts: list[np.ndarray],
    *,
    k: int,
    deadline: float,
    tolerance: float,
    leaf_limit: int,
    state_limit: int = STATE_LIMIT,
) -> Searched:
    """The best ``k`` points of ``model``'s lattice, or the best found by ``deadline``
    (``time.perf_counter``) with a bound on the rest."""
    import numpy as np

    if plan.problem.relaxed:
        tree = branch_and_bound(
            model,
            plan,
            starts,
            k=k,
            deadline=deadline,
            leaf_limit=leaf_limit,
            tolerance=tolerance,
        )
        return Searched(
            tree.points,
            tree.upper,
            tree.complete,
            "branch and bound",
            tree.nodes,
            0,
            tree.root_bound,
        )
    tol = max(tolerance, TOLERANCE)
    dual = Dual(model, plan)
    masks = [np.ones(len(v), dtype=bool) for v in model.values]
    root = dual.minimize(masks, None, target=-math.inf, rounds=ROOT_ROUNDS)
    found = Incumbents(k)
    moves = Moves(model)
    _incumbents(model, moves, found, starts, root.points, k, deadline)
    prepared = prepare(model, plan, masks, _pruning_rows(root.lam))
    passes = _Passes(model, plan, prepared, root.value, deadline, state_limit)
    first_upper = root.value
    if k > 1:  # the best point first, with the merging only k = 1 allows
        best = Incumbents(1)
        best.add(*_rows(found.ranked()[:1]))
        passes.run(best, 1, tol)
        found.add(*_rows(best.ranked()))
        first_upper = passes.ceiling
        passes.restart()
    complete = passes.run(found, k, tol)
    if k == 1:
        first_upper = passes.ceiling
    return Searched(
        found.ranked(),
        max(passes.ceiling, found.rest),
        complete,
        "dynamic programming",
        passes.states,
        passes.count,
        root.value,
        first_upper,
    )


def _rows(points: list[tuple[tuple[int, ...], float]]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    return np.array([p for p, _ in points], dtype=np.int64), np.array([o for _, o in points])


class _Passes:
    """Passes of the dynamic program over thresholds falling from the Lagrangian bound."""

    def __init__(
        self,
        model: LatticeModel,
        plan: MaxSum,
        prepared: Prepared,
        bound: float,
        deadline: float,
        state_limit: int,
    ) -> None:
        self.model, self.plan, self.prepared = model, plan, prepared
        self.bound, self.deadline, self.state_limit = bound, deadline, state_limit
        self.lowest = sum(float(t.min()) for t in model.tables) - 1.0  # every point is above
        self.states = self.count = 0
        self.ceiling = bound  # every point above it is known (to the incumbents)
        self.proved = 0.0  # the depth below the bound of the last pass that closed

    def restart(self) -> None:
        """Start over for other incumbents (more points): nothing is known above any
        threshold, and a pass that was cheap for one point may not be for k."""
        self.ceiling = self.bound
        self.proved = 0.0

    def run(self, found: Incumbents, k: int, tol: float) -> bool:
        """Passes until the k-th best point found is within ``tol`` of the ceiling (True), or
        the time limit or the state limit stops them (False)."""
        step = FIRST_DELTA
        while True:
            floor = max(found.threshold + tol, self.lowest)
            if self.ceiling <= floor:
                return True
            depth = self.proved + step
            theta = max(self.bound - depth, floor)
            above = points_above(
                self.model,
                self.plan,
                self.prepared,
                theta,
                k=k,
                deadline=self.deadline,
                state_limit=self.state_limit,
            )
            self.count += 1
            self.states += above.states
            if not above.complete:
                if time.perf_counter() > self.deadline or step < FIRST_DELTA:
                    return False
                step /= 4  # too far down at once: try nearer the last threshold that closed
                continue
            if above.points:  # checked on the cost model itself (float sums of huge costs)
                rows = _rows([(tuple(p), o) for p, o in above.points])[0]
                rows = rows[self.model.fits(rows)]
                found.add(rows, self.model.objective(rows))
            # every point above theta is known now; beyond the k returned, none is above more
            self.ceiling = max(above.more, theta) if len(above.points) >= k else theta
            self.proved = depth
            # a pass's cost grows steeply with its depth: leap while passes are cheap, then creep
            factor = (
                3.0 if above.states < CHEAP_PASS else 1.0 if above.states < 10 * CHEAP_PASS else 0.4
            )
            step = depth * factor


def _incumbents(
    model: LatticeModel,
    moves: Moves,
    found: Incumbents,
    starts: list[np.ndarray],
    maximizers: np.ndarray,
    k: int,
    deadline: float,
) -> None:
    """Good fitting points to start from: the starts and the Lagrangian's best maximizer,
    repaired and climbed, and (for ``k > 1``) their fitting neighbours."""
    import numpy as np

    seeds = list(starts)
    if len(maximizers):
        fit = model.fits(maximizers)
        found.add(maximizers[fit], model.objective(maximizers[fit]))
        objs = model.objective(maximizers)
        seeds.append(greedy(model, maximizers[int(np.argmax(objs))]))
    budget = time.perf_counter() + 0.3 * max(deadline - time.perf_counter(), 0.0)
    for seed in seeds:
        point = climb(model, moves, seed, deadline=budget)
        found.add(point[None, :], model.objective(point[None, :]))
    if k > 1:
        for key, _ in found.ranked()[: max(1, k // 4)]:
            rows, objs = neighbours(model, moves, np.array(key), k)
            found.add(rows, objs)


def _pruning_rows(lam: np.ndarray) -> np.ndarray:
    """The multipliers a pass prunes with: the best ones first, then scaled (all budgets and
    each alone), so that a partial point that overspends one budget meets a bound that
    charges it."""
    import numpy as np

    rows = [lam * f for f in (1.0, 0.8, 1.25, 0.5, 2.0)]
    if len(lam) > 1:
        top = float(lam.max()) or 1.0
        for j in range(len(lam)):
            for f in (0.5, 2.0, 8.0):
                r = lam.copy()
                r[j] = max(r[j], 1e-3 * top) * f
                rows.append(r)
    return np.array(rows)


__all__ = ["FIRST_DELTA", "Searched", "search"]
