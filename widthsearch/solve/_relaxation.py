"""The geometric program's continuous relaxation of a lattice search, with a box per variable.

Over ``z_c = v_c / s_c`` (each variable's width over its largest lattice width, so the box is
within (0, 1]) it maximizes ``Π_c z_c^(w_c / W)`` (the log-linear objective on a mean scale,
as :class:`~widthsearch.solve.program.SynExpProgram` does) under every budgeted cost, each
normalized by its value at the lattice's top. Built once per lattice model structure with
``cp.Parameter`` budgets and box, so a branch-and-bound node only substitutes numbers. Private
to :mod:`widthsearch.solve.lattice`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from widthsearch.errors import SolverError

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel


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
        n = model.n
        assert model.weights is not None  # a log-linear objective
        weights = model.weights
        self.scale = np.array([float(v[-1]) for v in model.values])
        w = np.array([sum(weights[g] for g in c) for c in model.classes])
        base = model.space.base_widths
        self.offset = float(
            (w * np.log(self.scale)).sum()
            - sum(weights[g] * math.log(base[g]) for c in model.classes for g in c)
        )
        self.total = float(w.sum())
        self.x = cp.Variable(n, pos=True, name="z")
        self.lower = cp.Parameter(n, pos=True, name="z_min")
        self.upper = cp.Parameter(n, pos=True, name="z_max")
        top = np.array([float(v[-1]) for v in model.values])
        self.budget: dict[str, Any] = {}
        self.norm: dict[str, tuple[float, float]] = {}
        constraints = [self.x >= self.lower, self.x <= self.upper]
        for cost in model.costs:
            norm = float(cost(top.astype(cost.lin.dtype)[None, :])[0])
            lin = cost.lin.astype(float) * self.scale / norm
            sq = cost.sq.astype(float) * self.scale**2 / norm
            pair = cost.pair.astype(float) * np.outer(self.scale, self.scale) / norm
            expr: Any = 0
            i1 = np.nonzero(lin)[0]
            if len(i1):
                expr = expr + cp.sum(cp.multiply(lin[i1], self.x[i1]))
            i2 = np.nonzero(sq)[0]
            if len(i2):
                expr = expr + cp.sum(cp.multiply(sq[i2], cp.multiply(self.x[i2], self.x[i2])))
            pi, pj = np.nonzero(pair)
            if len(pi):
                coef = pair[pi, pj]
                expr = expr + cp.sum(cp.multiply(coef, cp.multiply(self.x[pi], self.x[pj])))
            if isinstance(expr, int):  # a cost no width moves: the bottom check decides it
                continue
            self.budget[cost.name] = cp.Parameter(pos=True, name=f"{cost.name}_budget")
            self.norm[cost.name] = (norm, float(cost.c0))
            constraints.append(expr <= self.budget[cost.name])
        live = [i for i in range(n) if w[i] > 0]
        objective = cp.prod(cp.hstack([self.x[i] ** (w[i] / self.total) for i in live]))
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

    def solve(self, low: np.ndarray, high: np.ndarray) -> Relaxed | None:
        """The optimum with each variable's width in ``[low, high]``; None if infeasible.

        A variable with ``low == high`` gets a box 1e-7 wide, so the program keeps an interior;
        the bound only grows by it.

        Raises:
            SolverError: the solver failed.
        """
        import cvxpy as cp
        import numpy as np

        lo = np.asarray(low, dtype=float) / self.scale
        hi = np.maximum(np.asarray(high, dtype=float) / self.scale, lo * (1 + 1e-7))
        self.lower.value, self.upper.value = lo, hi
        for cost in self.model.costs:
            if cost.name in self.budget:
                norm, c0 = self.norm[cost.name]
                self.budget[cost.name].value = max((float(cost.limit) - c0) / norm, 1e-12)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                self.problem.solve(gp=True, solver=cp.CLARABEL)
        except cp.error.SolverError as exc:  # pragma: no cover - numerical trouble
            raise SolverError(f"the lattice relaxation failed: {exc}") from exc
        self.solves += 1
        if self.problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return None
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(f"the lattice relaxation ended {self.problem.status}")
        z = np.clip(np.asarray(self.x.value, dtype=float), lo, hi)
        value = float(cast(float, self.problem.value))
        return Relaxed(z * self.scale, self.total * math.log(value) + self.offset)


__all__ = ["Relaxation", "Relaxed"]
