"""Branch and bound over a width lattice with Lagrangian bounds (see
:mod:`widthsearch.solve.lattice`).

Best first: the open node of highest bound is expanded next, so the largest open bound is the
certified upper bound at any time. A node keeps, per variable, the values still allowed (a
mask). Expanding it:

1. **filter**: drop each value that cannot fit with every other variable at its smallest
   allowed value (every cost grows with every width); a node whose smallest point does not
   fit holds no fitting point;
2. **leaf**: at most ``leaf_limit`` points left: enumerate them;
3. **bound**: minimize the Lagrangian ``g(λ)`` (:class:`~widthsearch.solve._lagrange.Dual`)
   from the parent's multipliers; every inner maximizer that fits is a candidate point; prune
   when the bound is not above the K-th best point found by more than the tolerance;
4. **fix**: a value whose max-marginal (the Lagrangian's best with the variable at that
   value) is not above that threshold is dropped: no point with it can be among the best;
5. **branch** on the variable whose second-best value comes closest to the bound (the least
   decided), one child per value left, each bounded by its max-marginal.

The incumbents are the best ``k`` distinct fitting points met: by the starting points' local
search (:func:`~widthsearch.solve._local.climb`), the inner maximizers that fit (climbed when
they enter the best k), leaves and the neighbours of the best point. Private to the lattice
search.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from widthsearch.errors import RoundingError
from widthsearch.solve._lagrange import Dual
from widthsearch.solve._lattice_model import LatticeModel, enumerate_top, greedy
from widthsearch.solve._local import Moves, climb, neighbours

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._maxsum import MaxSum

TOLERANCE = 1e-6
"""How far (log objective) a bound must be above the K-th best point to keep a node: "exact"
means optimal up to this."""
ROOT_ROUNDS = 40
NODE_ROUNDS = 4


@dataclass
class Incumbents:
    """The best ``k`` distinct fitting points found, and the best objective of any other point
    met (``rest``: evicted, enumerated past the k best, or bounded by a pruned node)."""

    k: int
    points: dict[tuple[int, ...], float] = field(default_factory=dict)
    rest: float = -math.inf

    @property
    def threshold(self) -> float:
        """The k-th best objective (``-inf`` until k points are found)."""
        if len(self.points) < self.k:
            return -math.inf
        return min(self.points.values())

    @property
    def best(self) -> float:
        return max(self.points.values(), default=-math.inf)

    def add(self, rows: np.ndarray, objs: np.ndarray) -> bool:
        """Offer points; True if one entered the best k."""
        entered = False
        for row, obj in zip(rows, objs, strict=True):
            key = tuple(int(x) for x in row)
            if key in self.points:
                continue
            obj = float(obj)
            if len(self.points) < self.k:
                self.points[key] = obj
                entered = True
            elif obj > self.threshold:
                worst = min(self.points, key=self.points.__getitem__)
                self.rest = max(self.rest, self.points.pop(worst))
                self.points[key] = obj
                entered = True
            else:
                self.rest = max(self.rest, obj)
        return entered

    def ranked(self) -> list[tuple[tuple[int, ...], float]]:
        return sorted(self.points.items(), key=lambda kv: -kv[1])


@dataclass(frozen=True)
class Branched:
    """What a branch-and-bound run found."""

    points: list[tuple[tuple[int, ...], float]]
    """The best k points found (value indices, objective), best first."""
    upper: float
    """A bound on the objective of every point not in ``points``."""
    complete: bool
    """The tree was exhausted (or closed to the gap tolerance)."""
    nodes: int
    passes: int
    root_bound: float
    """The Lagrangian bound of the root (the whole lattice)."""


def _filter(model: LatticeModel, masks: np.ndarray) -> np.ndarray | None:
    """Each variable's values that fit with the others at their smallest; None if none do."""
    import numpy as np

    low = masks.argmax(axis=1)
    if not model.fits(low[None, :])[0]:
        return None
    js, ks = np.nonzero(masks)
    move = ks != low[js]
    js, ks = js[move], ks[move]
    if not len(js):
        return masks
    rows = np.repeat(low[None, :], len(js), axis=0)
    rows[np.arange(len(js)), js] = ks
    ok = model.fits(rows)
    out = masks.copy()
    out[js[~ok], ks[~ok]] = False
    return out


def _domains(masks: np.ndarray) -> list[np.ndarray]:
    import numpy as np

    return [np.nonzero(m)[0] for m in masks]


def branch_and_bound(
    model: LatticeModel,
    maxsum: MaxSum,
    starts: list[np.ndarray],
    *,
    k: int,
    deadline: float,
    leaf_limit: int,
    tolerance: float,
) -> Branched:
    """The best ``k`` lattice points, or the best found by ``deadline`` (``time.perf_counter``)
    with a bound on the rest. Nodes are pruned unless their bound beats the k-th best point by
    more than ``tolerance`` (at least :data:`TOLERANCE`)."""
    import numpy as np

    tol = max(tolerance, TOLERANCE)
    n = model.n
    sizes = np.array([len(v) for v in model.values])
    width = int(sizes.max())
    full = np.arange(width)[None, :] < sizes[:, None]
    dual = Dual(model, maxsum)
    moves = Moves(model)
    found = Incumbents(k)
    local_deadline = time.perf_counter() + 0.25 * max(deadline - time.perf_counter(), 0)
    for start in starts:
        point = climb(model, moves, start, deadline=local_deadline)
        found.add(point[None, :], model.objective(point[None, :]))

    def offer(rows: np.ndarray) -> None:
        """Fitting rows enter the incumbents; a new best is climbed from."""
        if not len(rows):
            return
        ok = model.fits(rows)
        rows = rows[ok]
        if not len(rows):
            return
        objs = model.objective(rows)
        before = found.threshold
        found.add(rows, objs)
        i = int(np.argmax(objs))
        if objs[i] > before and time.perf_counter() < deadline:
            point = climb(model, moves, rows[i], deadline=deadline)
            found.add(point[None, :], model.objective(point[None, :]))

    counter = itertools.count()
    # (minus the bound, minus the depth: deeper first among equal bounds, order, masks, λ)
    heap: list[tuple[float, int, int, np.ndarray, np.ndarray | None]] = []
    heapq.heappush(heap, (-math.inf, 0, next(counter), full, None))
    nodes = 0
    root_bound = math.inf
    closed = -math.inf  # the largest bound of a node closed without enumerating it
    complete = True
    while heap:
        neg, minus_depth, _, masks, lam = heap[0]
        if -neg <= found.threshold + tol:
            break  # every open node is below the threshold
        if time.perf_counter() > deadline:
            complete = False
            break
        heapq.heappop(heap)
        node_bound = -neg
        filtered = _filter(model, masks)
        if filtered is None:
            continue
        masks = filtered
        count = math.prod(int(c) for c in masks.sum(axis=1))
        if count <= leaf_limit:
            rows, objs, rest = enumerate_top(model, _domains(masks), k)
            found.add(rows, objs)
            found.rest = max(found.rest, rest)
            continue
        nodes += 1
        is_root = lam is None
        mlist = [m[: sizes[j]] for j, m in enumerate(masks)]
        bound = dual.minimize(
            mlist,
            lam,
            target=found.threshold + tol,
            rounds=ROOT_ROUNDS if is_root else NODE_ROUNDS,
        )
        offer(bound.points)
        if is_root:
            root_bound = bound.value
            best_fit = _repair_start(model, bound.points)
            if best_fit is not None:
                offer(best_fit[None, :])
            if found.points:
                top = np.array(found.ranked()[0][0])
                rows, objs = neighbours(model, moves, top, max(k, 1) * 4)
                found.add(rows, objs)
        value = min(bound.value, node_bound)
        if value <= found.threshold + tol:
            closed = max(closed, value)
            continue
        _, _, solved = dual.evaluate(bound.lam[None, :], mlist, marginals=True)
        assert solved.marginals is not None
        shift = float(bound.lam @ dual.offset)
        marg = np.full((n, width), -np.inf)
        for j in range(n):
            marg[j, : sizes[j]] = solved.marginals[j][0] + shift
        marg = np.minimum(marg, value)
        drop = masks & (marg <= found.threshold + tol)
        if drop.any():
            closed = max(closed, float(marg[drop].max()))
            masks = masks & ~drop
            if not masks.any(axis=1).all():
                continue
        alive = masks.sum(axis=1)
        count = math.prod(int(c) for c in alive)
        if count <= leaf_limit:
            rows, objs, rest = enumerate_top(model, _domains(masks), k)
            found.add(rows, objs)
            found.rest = max(found.rest, rest)
            continue
        j = _branch_variable(masks, marg, model)
        for a in np.nonzero(masks[j])[0]:
            child = masks.copy()
            child[j] = False
            child[j, a] = True
            child_bound = float(min(value, marg[j, a]))
            heapq.heappush(heap, (-child_bound, minus_depth - 1, next(counter), child, bound.lam))
    open_bound = max((-h[0] for h in heap), default=-math.inf)
    upper = max(found.rest, closed, open_bound)
    return Branched(
        found.ranked(),
        upper,
        complete,
        nodes,
        dual.passes,
        root_bound if math.isfinite(root_bound) else upper,
    )


def _branch_variable(masks: np.ndarray, marg: np.ndarray, model: LatticeModel) -> int:
    """The variable to branch on: of those whose two best values tie for the bound (the
    Lagrangian's maximizers disagree on them), the one whose two values differ most in
    objective (the coarsest choice, where the duality gap comes from); when none ties, the
    one whose second-best value comes closest."""
    import numpy as np

    n = masks.shape[0]
    scores = np.where(masks, marg, -np.inf)
    order = np.argsort(-scores, axis=1)
    first, second = order[:, 0], order[:, 1]
    rows = np.arange(n)
    top, runner = scores[rows, first], scores[rows, second]
    live = masks.sum(axis=1) > 1
    bound = float(top[live].max())
    ties = live & (runner >= bound - 1e-9 * max(1.0, abs(bound)))
    if ties.any():
        table = np.full(masks.shape, np.nan)
        for j, t in enumerate(model.tables):
            table[j, : len(t)] = t
        step = np.abs(table[rows, first] - table[rows, second])
        return int(np.argmax(np.where(ties, step, -np.inf)))
    return int(np.argmax(np.where(live, runner, -np.inf)))


def _repair_start(model: LatticeModel, points: np.ndarray) -> np.ndarray | None:
    """The best inner maximizer made to fit: each variable stepped down (least objective lost
    per budget share saved) until every budget holds, from the maximizer of highest objective."""
    import numpy as np

    if not len(points):
        return None
    objs = model.objective(points)
    try:
        return greedy(model, points[int(np.argmax(objs))])
    except RoundingError:  # pragma: no cover - the smallest point fits (checked before)
        return None


__all__ = ["TOLERANCE", "Branched", "Incumbents", "branch_and_bound"]
