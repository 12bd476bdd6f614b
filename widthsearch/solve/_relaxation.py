"""The geometric program's continuous relaxation of a lattice search: each variable anywhere
between its smallest and largest lattice width.

In log widths ``u_c = log v_c`` (each over its largest lattice width, so the box is within
``(-inf, 0]``; a variable with one width is that constant) it maximizes the log-linear
objective ``Σ_c w_c u_c`` under every budgeted cost, each written as
``log Σ_t exp(a_t · u + log c_t) <= log (B - c0)``: a convex program with one vectorized
log-sum-exp per budget (the geometric program of :class:`~widthsearch.solve.program.
SynExpProgram` in its convex form; cvxpy compiles it in a few milliseconds where the same
program term by term took half a second on DenseNet). Built once per lattice model structure
with ``cp.Parameter`` budgets, so a new budget only substitutes numbers. Clarabel solves it;
where it fails numerically, SCS. Private to :mod:`widthsearch.solve.lattice`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from widthsearch.errors import SolverError

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import Cost, LatticeModel


@dataclass(frozen=True)
class Relaxed:
    """A relaxation's optimum: widths per variable and the objective there (an upper bound on
    every lattice point in the box)."""

    widths: np.ndarray
    bound: float


class Relaxation:
    """The relaxation of one lattice model; :meth:`of` caches it on the width space."""

    def __init__(self, model: LatticeModel) -> None:
        import cvxpy as cp
        import numpy as np

        self.model = model
        assert model.weights is not None  # a log-linear objective
        weights = model.weights
        self.scale = np.array([float(v[-1]) for v in model.values])
        w = np.array([sum(weights[g] for g in c) for c in model.classes])
        base = model.space.base_widths
        self.offset = float(
            (w * np.log(self.scale)).sum()
            - sum(weights[g] * math.log(base[g]) for c in model.classes for g in c)
        )
        # a variable with one width sits at its scale (u = 0): only the others are variables
        self.free = np.array([j for j, v in enumerate(model.values) if len(v) > 1], dtype=int)
        low = np.array([math.log(model.values[j][0] / self.scale[j]) for j in self.free])
        self.u = cp.Variable(len(self.free), name="u")
        self.budget: dict[str, Any] = {}
        self.norm: dict[str, float] = {}
        constraints = [self.u >= low, self.u <= 0]
        for cost in model.costs:
            rows, logc = _monomials(cost, self.scale)
            rows = rows[:, self.free]
            if not len(logc) or not rows.any():  # no width moves it: the bottom check decides
                continue
            # each cost over its value at the lattice's top, for the solver's sake
            top = float(np.logaddexp.reduce(logc))
            self.norm[cost.name] = top
            self.budget[cost.name] = cp.Parameter(name=f"log_{cost.name}_budget")
            constraints.append(
                cp.log_sum_exp(rows @ self.u + (logc - top)) <= self.budget[cost.name]
            )
        self.total = float(w.sum()) or 1.0
        objective = (w[self.free] / self.total) @ self.u if len(self.free) else cp.Constant(0)
        self.problem = cp.Problem(cp.Maximize(objective), constraints)
        self.solves = 0
        self.polys = tuple(c.poly for c in model.costs)

    @classmethod
    def of(cls, model: LatticeModel) -> Relaxation:
        """The relaxation for ``model``'s structure, built once and kept on its width space."""
        cache = cast(dict[Any, Any], model.space.__dict__)
        key = (
            "_lattice_relaxation",
            model.classes,
            tuple(tuple(int(x) for x in v) for v in model.values),
            tuple(model.weights or ()),
            tuple((c.name, id(c.poly), c.exact) for c in model.costs),
        )
        found = cache.get(key)
        if found is None or any(
            a is not b.poly for a, b in zip(found.polys, model.costs, strict=True)
        ):
            found = cache[key] = cls(model)
        found.model = model
        return found

    def solve(self) -> Relaxed | None:
        """The optimum over the lattice's box (each variable between its smallest and largest
        width); None if no point of the box fits.

        Raises:
            SolverError: both solvers (Clarabel, then SCS) failed.
        """
        import cvxpy as cp
        import numpy as np

        for cost in self.model.costs:
            if cost.name in self.budget:
                room = max(float(cost.limit) - float(cost.c0), 1e-300)
                self.budget[cost.name].value = math.log(room) - self.norm[cost.name]
        failure = None
        for solver in (cp.CLARABEL, cp.SCS):
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                    self.problem.solve(solver=solver)
            except cp.error.SolverError as exc:  # numerical trouble: try the next solver
                failure = exc
                continue
            break
        else:
            raise SolverError(f"the lattice relaxation failed: {failure}")
        self.solves += 1
        if self.problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return None
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(f"the lattice relaxation ended {self.problem.status}")
        u = np.zeros(len(self.scale))
        if len(self.free):
            u[self.free] = np.minimum(np.asarray(self.u.value, dtype=float), 0.0)
        value = float(cast(float, self.problem.value))
        return Relaxed(np.exp(u) * self.scale, self.total * value + self.offset)


def _monomials(cost: Cost, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cost``'s width-dependent terms as exponent rows over the log widths (each over its
    scale) and log coefficients: ``cost - c0 = Σ_t exp(rows_t · u + logc_t)``."""
    import numpy as np

    n = len(scale)
    eye = np.eye(n)
    rows, logc = [], []
    for j in np.nonzero(cost.lin)[0]:
        rows.append(eye[j])
        logc.append(math.log(float(cost.lin[j]) * scale[j]))
    for j in np.nonzero(cost.sq)[0]:
        rows.append(2 * eye[j])
        logc.append(math.log(float(cost.sq[j]) * scale[j] ** 2))
    for i, j in zip(*np.nonzero(cost.pair), strict=True):
        rows.append(eye[i] + eye[j])
        logc.append(math.log(float(cost.pair[i, j]) * scale[i] * scale[j]))
    return np.array(rows).reshape(-1, n), np.array(logc)


__all__ = ["Relaxation", "Relaxed"]
