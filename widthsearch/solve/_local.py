"""Local search on a width lattice: the incumbent of :mod:`widthsearch.solve._branch`.

From a point that fits every budget, :func:`climb` takes the best move that keeps it fitting and
raises the objective, until none does: one variable one or more values up or down (a *1-move*),
or two variables at once (a *2-move*: typically one up and one down, which trades one budget
share for another). Every move is scored at once with numpy: a cost changes by

    ΔC = lin_j δ + sq_j ((v_j + δ)² - v_j²) + δ Σ_i P_ji v_i      (one variable by δ)
    ΔC = ΔC_1 + ΔC_2 + P_j1j2 δ_1 δ_2                             (two)

in the scaled integers of :class:`~widthsearch.solve._lattice_model.Cost` (exact in float64
below 2**53), and the point a move reaches is checked on the cost model itself before it is
taken. :func:`neighbours` lists the fitting points one or two moves away, which seed a search
for the best K points. Private to the lattice search.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel

PAIR_LIMIT = 4_000_000
"""Largest number of 2-moves scored in one batch (pairs beyond it are sampled by gain)."""


class Moves:
    """The cost tables of a lattice model arranged for scoring moves."""

    def __init__(self, model: LatticeModel) -> None:
        import numpy as np

        self.model = model
        n = model.n
        self.sizes = np.array([len(v) for v in model.values])
        self.width = int(self.sizes.max()) if n else 0
        self.values = np.zeros((n, self.width))
        self.tables = np.full((n, self.width), -np.inf)
        for j, (v, t) in enumerate(zip(model.values, model.tables, strict=True)):
            self.values[j, : len(v)] = v
            self.tables[j, : len(v)] = t
        self.lin = np.array([c.lin.astype(float) for c in model.costs]).reshape(-1, n)
        self.sq = np.array([c.sq.astype(float) for c in model.costs]).reshape(-1, n)
        self.sym = np.array([(c.pair + c.pair.T).astype(float) for c in model.costs]).reshape(
            -1, n, n
        )
        self.limit = np.array([float(c.limit) for c in model.costs])
        js, ks = np.nonzero(np.arange(self.width)[None, :] < self.sizes[:, None])
        self.js, self.ks = js, ks

    def cost(self, idx: np.ndarray) -> np.ndarray:
        """Costs (scaled) of one point."""
        import numpy as np

        pts = self.model.points(idx[None, :])
        return np.array([float(c(pts)[0]) for c in self.model.costs])

    def singles(
        self, idx: np.ndarray, cost: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every 1-move from ``idx``: variable, value index, value change, objective change,
        cost change (moves x costs)."""
        import numpy as np

        v = self.values[np.arange(len(idx)), idx]
        keep = self.ks != idx[self.js]
        js, ks = self.js[keep], self.ks[keep]
        new = self.values[js, ks]
        delta = new - v[js]
        gain = self.tables[js, ks] - self.tables[js, idx[js]]
        inner = self.sym @ v  # costs x variables: Σ_i P_ji v_i
        dcost = (
            self.lin[:, js] * delta
            + self.sq[:, js] * (new * new - v[js] ** 2)
            + inner[:, js] * delta
        ).T
        return js, ks, delta, gain, dcost


def climb(model: LatticeModel, moves: Moves, idx: np.ndarray, *, deadline: float) -> np.ndarray:
    """The best fitting 1- or 2-move, repeated until none raises the objective (or the
    deadline passes); ``idx`` must fit every budget."""
    import numpy as np

    idx = np.array(idx, dtype=np.int64)
    cost = moves.cost(idx)
    while time.perf_counter() < deadline:
        js, ks, delta, gain, dcost = moves.singles(idx, cost)
        room = moves.limit - cost
        fit = (dcost <= room).all(axis=1)
        best_gain = 1e-12
        choice: tuple[int, ...] | None = None
        ok = fit & (gain > best_gain)
        if ok.any():
            i = int(np.argmax(np.where(ok, gain, -np.inf)))
            best_gain, choice = float(gain[i]), (i,)
        pair = _best_pair(moves, js, delta, gain, dcost, room, best_gain)
        if pair is not None:
            choice = pair
        if choice is None:
            break
        trial = idx.copy()
        for i in choice:
            trial[js[i]] = ks[i]
        if not model.fits(trial[None, :])[0]:  # pragma: no cover - the deltas are exact
            break
        idx, cost = trial, moves.cost(trial)
    return idx


def _best_pair(
    moves: Moves,
    js: np.ndarray,
    delta: np.ndarray,
    gain: np.ndarray,
    dcost: np.ndarray,
    room: np.ndarray,
    floor: float,
) -> tuple[int, int] | None:
    """The fitting 2-move of most gain above ``floor``: a move that gains, with any other."""
    import numpy as np

    up = np.nonzero(gain > 0)[0]
    if not len(up):
        return None
    if len(up) * len(js) > PAIR_LIMIT:
        up = up[np.argsort(-gain[up])[: max(1, PAIR_LIMIT // len(js))]]
    total = gain[up][:, None] + gain[None, :]
    cand = (total > floor) & (js[up][:, None] != js[None, :])
    if not cand.any():
        return None
    a, b = np.nonzero(cand)
    ia, ib = up[a], b
    inter = moves.sym[:, js[ia], js[ib]] * (delta[ia] * delta[ib])[None, :]
    dc = dcost[ia] + dcost[ib] + inter.T
    fit = (dc <= room[None, :]).all(axis=1)
    if not fit.any():
        return None
    score = np.where(fit, total[a, b], -np.inf)
    i = int(np.argmax(score))
    return int(ia[i]), int(ib[i])


def neighbours(
    model: LatticeModel, moves: Moves, idx: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` fitting points one or two moves from ``idx``, best first, and their
    objectives."""
    import numpy as np

    cost = moves.cost(idx)
    base = float(model.objective(idx[None, :])[0])
    js, ks, delta, gain, dcost = moves.singles(idx, cost)
    room = moves.limit - cost
    rows, objs = [], []
    fit1 = (dcost <= room).all(axis=1)
    for i in np.nonzero(fit1)[0][np.argsort(-gain[fit1])][:limit]:
        p = idx.copy()
        p[js[i]] = ks[i]
        rows.append(p)
        objs.append(base + gain[i])
    order = np.argsort(-gain)[: max(1, int(np.sqrt(PAIR_LIMIT)))]
    a, b = np.triu_indices(len(order), 1)
    ia, ib = order[a], order[b]
    keep = js[ia] != js[ib]
    ia, ib = ia[keep], ib[keep]
    inter = moves.sym[:, js[ia], js[ib]] * (delta[ia] * delta[ib])[None, :]
    dc = dcost[ia] + dcost[ib] + inter.T
    fit2 = (dc <= room[None, :]).all(axis=1)
    tot = gain[ia] + gain[ib]
    sel = np.nonzero(fit2)[0]
    for i in sel[np.argsort(-tot[sel])][:limit]:
        p = idx.copy()
        p[js[ia[i]]] = ks[ia[i]]
        p[js[ib[i]]] = ks[ib[i]]
        rows.append(p)
        objs.append(base + tot[i])
    if not rows:
        return np.zeros((0, len(idx)), dtype=np.int64), np.zeros(0)
    pts = np.array(rows)
    ok = model.fits(pts)
    pts, obj = pts[ok], model.objective(pts[ok])
    order2 = np.argsort(-obj, kind="stable")[:limit]
    return pts[order2], obj[order2]


__all__ = ["Moves", "climb", "neighbours"]
