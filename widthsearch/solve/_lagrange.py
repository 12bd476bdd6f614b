"""A cheap, valid bound for a branch-and-bound node: linearized budgets and a Lagrangian dual.

In log widths ``u_c = log v_c`` every budget is ``F_k(u) = log Σ_t c_t exp(a_t · u) <= log B_k``
with ``F_k`` convex (log-sum-exp of affine functions), so its tangent at any point ``u0`` lies
below it: ``F_k(u0) + ∇F_k(u0) · (u - u0) <= F_k(u)``. Replacing each budget by its tangent
relaxes the problem (every lattice point that fits still fits), and the relaxed problem has
separable constraints, so for any multipliers ``λ >= 0`` its Lagrangian

    L(λ) = Σ_c max_{v in D_c} [T_c(v) - (λ · G_c) log v] + λ · r

is an upper bound on every fitting point of the node (weak duality), for any separable objective
``T``. ``λ = 0`` is the cheap bound (each variable at its best term); the minimum over ``λ`` is
found by bisection on the subgradient, coordinate by coordinate. At the geometric program's
optimum the tangents are its KKT conditions, so linearizing there gives the relaxation's bound
without solving it again. Private to :mod:`widthsearch.solve._branch`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel


class Linearized:
    """The budgets of a lattice model as log-sum-exp functions of the log widths."""

    def __init__(self, model: LatticeModel) -> None:
        import numpy as np

        self.model = model
        n = model.n
        self.logv = [np.log(v.astype(float)) for v in model.values]
        self.terms: list[tuple[np.ndarray, np.ndarray, float]] = []
        for cost in model.costs:
            logc, rows = [], []
            if cost.c0:
                logc.append(math.log(float(cost.c0)))
                rows.append(np.zeros(n))
            for j in np.nonzero(cost.lin)[0]:
                logc.append(math.log(float(cost.lin[j])))
                rows.append(np.eye(n)[j])
            for j in np.nonzero(cost.sq)[0]:
                logc.append(math.log(float(cost.sq[j])))
                rows.append(2 * np.eye(n)[j])
            for i, j in zip(*np.nonzero(cost.pair), strict=True):
                logc.append(math.log(float(cost.pair[i, j])))
                rows.append(np.eye(n)[i] + np.eye(n)[j])
            self.terms.append((np.array(logc), np.array(rows), math.log(float(cost.limit))))

    def tangents(self, u0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``G`` (budgets x variables) and ``r`` with ``G u <= r`` the budgets' tangents at u0."""
        import numpy as np

        gs, rs = [], []
        for logc, rows, log_b in self.terms:
            s = logc + rows @ u0
            top = s.max()
            weights = np.exp(s - top)
            total = weights.sum()
            f = top + math.log(total)
            g = (weights / total) @ rows
            gs.append(g)
            rs.append(log_b - f + g @ u0)
        return np.array(gs), np.array(rs)

    def bound(
        self, domains: list[np.ndarray], u0: np.ndarray, *, sweeps: int = 2
    ) -> tuple[float, np.ndarray]:
        """An upper bound on every fitting point in ``domains`` (value indices per variable),
        and the log widths the best multipliers pick (to guide branching).

        Each coordinate of ``λ`` is minimized exactly: ``L`` is piecewise linear along it, with
        its kinks where two widths of one variable tie, and every kink is evaluated at once.
        """
        import numpy as np

        model = self.model
        n = len(domains)
        m = max(len(d) for d in domains)
        tabs = np.full((n, m), -np.inf)
        logs = np.zeros((n, m))
        for j, d in enumerate(domains):
            tabs[j, : len(d)] = model.tables[j][d]
            logs[j, : len(d)] = self.logv[j][d]
            logs[j, len(d) :] = logs[j, len(d) - 1]
        lo = logs[:, 0]
        hi = np.array([self.logv[j][d[-1]] for j, d in enumerate(domains)])
        g, r = self.tangents(np.clip(u0, lo, hi))
        rows = np.arange(n)

        def evaluate(lams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """L at each row of ``lams`` and the log widths picked there."""
            vals = tabs[None] - (lams @ g)[:, :, None] * logs[None]
            pick = vals.argmax(axis=2)
            total = vals[np.arange(len(lams))[:, None], rows[None], pick].sum(axis=1)
            return total + lams @ r, logs[rows[None], pick]

        lam = np.zeros((1, len(r)))
        values, picks = evaluate(lam)
        best, best_u = float(values[0]), picks[0]
        iu, ju = np.triu_indices(m, 1)
        for _ in range(sweeps if len(r) else 0):
            for c in range(len(r)):
                # along λ_c each width's line has intercept a and slope b; kinks where two meet
                price = lam[0] @ g
                a = tabs - price[:, None] * logs
                b = -g[c][:, None] * logs
                with np.errstate(divide="ignore", invalid="ignore"):
                    kinks = (a[:, ju] - a[:, iu]) / (b[:, iu] - b[:, ju])
                kinks = kinks[np.isfinite(kinks) & (kinks > -lam[0, c])].ravel()
                if len(kinks) > 4096:
                    kinks = np.quantile(kinks, np.linspace(0, 1, 4096))
                trials = np.repeat(lam, len(kinks) + 1, axis=0)
                trials[1:, c] += kinks
                values, picks = evaluate(trials)
                k = int(np.argmin(values))
                lam = trials[k : k + 1]
                if values[k] < best:
                    best, best_u = float(values[k]), picks[k]
        return best, best_u


__all__ = ["Linearized"]
