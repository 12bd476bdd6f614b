"""The Lagrangian bound of a lattice search: budgets dualized, integrality kept.

For multipliers ``λ >= 0`` on the budgets (each cost divided by its budget, so ``λ_k`` is in
objective units per budget),

    g(λ) = max_v  Σ_j T_j(v_j) - Σ_k λ_k (C_k(v) / B_k - 1)

is at least the objective of every lattice point that fits (each fitting point makes the
penalty non-negative), for any separable objective ``T``. The inner maximum is a pairwise
max-sum problem over the lattice itself, solved exactly by :class:`~widthsearch.solve._maxsum.
MaxSum` (a batch of ``λ`` per pass; where its plan relaxed products, bounded from above), so
the bound keeps the integrality that a continuous relaxation loses: its gap to the best lattice
point is only the duality gap of a problem with one to four constraints. ``g`` is convex and
piecewise linear in ``λ``; every maximizer ``v`` gives a plane ``T(v) + λ · (1 - C(v)/B)``
below it, and :meth:`Dual.minimize` minimizes by cutting planes (Kelley's method: the lowest
point of the planes so far, in closed form for one budget and by a small linear program for
more, and a few points on the way there from the best ``λ``, evaluated as one batch), which
both bounds ``min g`` from below and stops as soon as the bound is low enough to prune.
Private to the lattice search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel
    from widthsearch.solve._maxsum import MaxSum, Solved

_STEPS = (0.125, 0.25, 0.5, 0.75, 1.0)
"""Points evaluated on the way from the best multipliers to the cutting planes' minimum."""


@dataclass
class Bound:
    """The best Lagrangian bound found for one node, and what the search needs from it."""

    value: float
    lam: np.ndarray
    """The multipliers that gave it."""
    floor: float
    """A lower bound on ``min_λ g`` (the cutting planes' minimum): how much better it could get."""
    points: np.ndarray
    """Every inner maximizer met (rows of value indices of the lattice variables)."""
    passes: int = 0


class Dual:
    """``g(λ)`` of one lattice model, evaluated through its max-sum plan."""

    def __init__(self, model: LatticeModel, maxsum: MaxSum) -> None:
        import numpy as np

        self.model, self.maxsum = model, maxsum
        self.limit = np.array([float(c.limit) for c in model.costs])
        self.k = len(self.limit)
        self.offset = 1 - maxsum.problem.constant / self.limit
        self.passes = 0

    def evaluate(
        self, lams: np.ndarray, masks: Sequence[np.ndarray] | None, *, marginals: bool = False
    ) -> tuple[np.ndarray, np.ndarray, Solved]:
        """``g`` and a subgradient (``1 - C(v)/B`` at the maximizer) for each row of ``lams``."""
        solved = self.maxsum.solve(lams / self.limit, masks, marginals=marginals)
        self.passes += 1
        values = solved.value + lams @ self.offset
        slopes = 1 - solved.cost / self.limit
        return values, slopes, solved

    def cap(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """Multipliers above which ``g`` only grows: ``g(λ) >= T(low) + λ · (1 - C(low)/B)`` at
        the node's smallest point, and ``g(0)`` is at most the sum of the best terms."""
        import numpy as np

        model = self.model
        low = np.array([int(np.argmax(m)) for m in masks])
        top = sum(float(model.tables[j][m].max()) for j, m in enumerate(masks))
        pts = model.points(low[None, :])
        share = np.array([float(c(pts)[0]) / float(c.limit) for c in model.costs])
        spread = top - float(model.objective(low[None, :])[0]) + 1.0
        slack = np.maximum(1 - share, 1e-9)
        return np.minimum(spread / slack, 1e12)

    def minimize(
        self,
        masks: Sequence[np.ndarray],
        start: np.ndarray | None,
        *,
        target: float,
        rounds: int,
        tolerance: float = 1e-9,
    ) -> Bound:
        """Lower ``g`` over ``λ`` from ``start`` (None: a spread of starting points) until it is
        at most ``target`` (the node can be pruned), within ``tolerance`` of the cutting
        planes' floor, or after ``rounds`` batches."""
        import numpy as np

        cap = self.cap(masks)
        if self.k == 0:
            values, slopes, solved = self.evaluate(np.zeros((1, 0)), masks)
            return Bound(
                float(values[0]),
                np.zeros(0),
                float(values[0]),
                solved.index[:, : self.model.n],
                passes=1,
            )
        trial = self._initial(cap, start)
        cuts_l: list[np.ndarray] = []
        cuts_g: list[np.ndarray] = []
        cuts_s: list[np.ndarray] = []
        found: list[np.ndarray] = []
        best = math.inf
        best_lam = trial[0]
        floor = -math.inf
        passes = 0
        for _ in range(rounds):
            values, slopes, solved = self.evaluate(trial, masks)
            passes += 1
            found.append(solved.index[:, : self.model.n])
            cuts_l.append(trial)
            cuts_g.append(values)
            cuts_s.append(slopes)
            i = int(np.argmin(values))
            if values[i] < best:
                best, best_lam = float(values[i]), trial[i]
            if best <= target:
                break
            lam_all = np.concatenate(cuts_l)
            g_all = np.concatenate(cuts_g)
            s_all = np.concatenate(cuts_s)
            low, floor = _lowest(lam_all, g_all, s_all, cap)
            if best - floor <= tolerance:
                break
            trial = np.array([best_lam + t * (low - best_lam) for t in _STEPS])
        points = np.unique(np.concatenate(found), axis=0)
        return Bound(best, best_lam, floor, points, passes=passes)

    def _initial(self, cap: np.ndarray, start: np.ndarray | None) -> np.ndarray:
        """A first batch: around ``start``, or log-spaced along every axis and the diagonal."""
        import numpy as np

        if start is not None:
            scale = np.exp(np.linspace(-0.5, 0.5, 5))
            rows = [start * s for s in scale]
            for k in range(self.k):
                for s in (0.8, 1.25):
                    r = start.copy()
                    r[k] *= s
                    rows.append(r)
            return np.minimum(np.array(rows), cap)
        fracs = 2.0 ** -np.arange(0, 16, 1.5)
        rows = [np.zeros(self.k)]
        for f in fracs:
            rows.append(cap * f)
            if self.k > 1:
                for k in range(self.k):
                    r = np.zeros(self.k)
                    r[k] = cap[k] * f
                    rows.append(r)
        return np.array(rows)


def _lowest(
    lams: np.ndarray, values: np.ndarray, slopes: np.ndarray, cap: np.ndarray
) -> tuple[np.ndarray, float]:
    """The minimum over ``0 <= λ <= cap`` of the planes ``g_b + s_b · (λ - λ_b)``: where to look
    next, and a lower bound on ``min g``."""
    import numpy as np

    icpt = values - (slopes * lams).sum(axis=1)
    if lams.shape[1] == 1:
        s, c = slopes[:, 0], icpt
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (c[None, :] - c[:, None]) / (s[:, None] - s[None, :])
        pts = np.concatenate([[0.0, float(cap[0])], cross[np.isfinite(cross)].ravel()])
        pts = pts[(pts >= 0) & (pts <= cap[0])]
        env = (c[None, :] + s[None, :] * pts[:, None]).max(axis=1)
        i = int(np.argmin(env))
        return np.array([pts[i]]), float(env[i])
    from scipy.optimize import linprog

    k = lams.shape[1]
    cost = np.zeros(k + 1)
    cost[-1] = 1.0
    a_ub = np.concatenate([slopes, -np.ones((len(slopes), 1))], axis=1)
    res = linprog(
        cost,
        A_ub=a_ub,
        b_ub=-icpt,
        bounds=[(0.0, float(c)) for c in cap] + [(None, None)],
        method="highs",
    )
    if res.status != 0:  # pragma: no cover - the planes always have a minimum in the box
        return lams[int(np.argmin(values))], -math.inf
    return np.asarray(res.x[:k]), float(res.x[-1])


__all__ = ["Bound", "Dual"]
