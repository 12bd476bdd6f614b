"""A width lattice as arrays: the decision variables' widths, the objective's tables, and the
budgeted costs as quadratic forms evaluated on many points at once (see
:mod:`widthsearch.solve.lattice`). Private to the lattice search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from widthsearch.errors import RoundingError, SolverError
from widthsearch.solve.program import Budgets, cost_label, describe_cost
from widthsearch.space.cost import parts

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.space.choices import WidthLattice
    from widthsearch.space.cost import MaxPosynomial, Posynomial
    from widthsearch.space.groups import Group
    from widthsearch.space.width_space import WidthSpace

Score = Callable[["Group", "np.ndarray"], "np.ndarray"]
"""A separable objective's term: a group and an array of its widths -> the term's values."""
_FLOAT_MARGIN = 1 - 1e-9
"""A fitted (float) cost is held this hair under its budget, so that drift cannot cross it."""


@dataclass
class Cost:
    """One cost over the decision variables, evaluable on a batch of points."""

    name: str
    poly: Posynomial
    c0: Any
    lin: np.ndarray
    sq: np.ndarray
    pair: np.ndarray
    """Upper-triangular: ``pair[c, d]`` for ``c < d``."""
    limit: Any
    exact: bool

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Costs (scaled) at ``points`` (rows of widths per variable)."""
        points = points.astype(self.lin.dtype, copy=False)
        out = points @ self.lin + (points * points) @ self.sq
        out += ((points @ self.pair) * points).sum(axis=1)
        return out + self.c0

    def fits(self, points: np.ndarray) -> np.ndarray:
        return self(points) <= self.limit


def build_cost(
    name: str,
    poly: Posynomial,
    limit: float,
    space: WidthSpace,
    var_of: Mapping[int, int],
    values: Sequence[Sequence[int]],
) -> Cost:
    """``poly`` over the variables, in scaled integers where its coefficients are exact."""
    import numpy as np

    n = len(values)
    base = space.base_widths
    terms: list[tuple[Any, tuple[int, ...]]] = []
    for mono, coef in poly.terms:
        c: Any = coef
        free: list[int] = []
        for g, e in mono:
            if g in var_of:
                free += [var_of[g]] * e
            else:
                c = c * base[g] ** e
        if len(free) > 2:  # pragma: no cover - no layer kind produces these
            raise SolverError(f"the {name} cost has a term of degree {len(free)}")
        terms.append((c, tuple(sorted(free))))
    exact = all(isinstance(c, (int, Fraction)) for c, _ in terms) and float(limit).is_integer()
    scale = 1
    if exact:
        for c, _ in terms:
            if isinstance(c, Fraction):
                scale = math.lcm(scale, c.denominator)
    dtype: Any = np.int64 if exact else np.float64
    c0: Any = 0
    lin, sq, pair = np.zeros(n, dtype), np.zeros(n, dtype), np.zeros((n, n), dtype)
    for c, var in terms:
        v = int(c * scale) if exact else float(c)
        if not var:
            c0 += v
        elif len(var) == 1:
            lin[var[0]] += v
        elif var[0] == var[1]:
            sq[var[0]] += v
        else:
            pair[var[0], var[1]] += v
    if not exact:
        return Cost(name, poly, c0, lin, sq, pair, float(limit) * _FLOAT_MARGIN, False)
    # Integers below 2**53 add and multiply exactly in float64 (and BLAS is far faster than
    # integer matmul): use floats whenever the largest value any sum reaches stays below it.
    top = [max(v) for v in values]
    reach = int(c0) + sum(int(lin[j]) * top[j] + int(sq[j]) * top[j] ** 2 for j in range(n))
    reach += sum(int(pair[i, j]) * top[i] * top[j] for i, j in zip(*np.nonzero(pair), strict=True))
    scaled = min(int(limit) * scale, reach + 1)
    if reach < 2**53:
        lin, sq, pair = lin.astype(float), sq.astype(float), pair.astype(float)
        return Cost(name, poly, float(c0), lin, sq, pair, float(scaled), True)
    return Cost(name, poly, c0, lin, sq, pair, scaled, True)  # pragma: no cover - huge models


class LatticeModel:
    """A lattice, its objective tables and its budgeted costs, as arrays."""

    def __init__(
        self,
        space: WidthSpace,
        lattice: WidthLattice,
        budgets: Budgets,
        costs: Mapping[str, Posynomial | MaxPosynomial] | None,
        weights: Sequence[float] | None,
        score: Score | None,
    ) -> None:
        import numpy as np

        self.space, self.lattice = space, lattice
        self.classes = lattice.classes
        self.n = n = len(self.classes)
        self.var_of = {g: i for i, c in enumerate(self.classes) for g in c}
        self.values = [np.array(v, dtype=np.int64) for v in lattice.values]
        self.weights = weights
        width = max(len(v) for v in self.values)
        self._padded = np.array([[*v, *[v[-1]] * (width - len(v))] for v in lattice.values], float)
        self._rows = np.arange(n)[None, :]
        base = space.base_widths
        self.tables: list[np.ndarray] = []
        for c, vals in zip(self.classes, self.values, strict=True):
            table = np.zeros(len(vals))
            for g in c:
                if score is not None:
                    table += np.asarray(score(space.groups[g], vals), dtype=float)
                else:
                    assert weights is not None
                    table += weights[g] * np.log(vals / base[g])
            self.tables.append(table)
        self.constant = 0.0
        polys = {"params": space.param_cost, "macs": space.mac_cost, **(costs or {})}
        limits = {k: b for k, b in budgets.limits().items() if b is not None}
        missing = [k for k in limits if k not in polys]
        if missing:
            raise SolverError(f"a {missing[0]} budget needs its cost model on the lattice")
        self.costs: list[Cost] = []
        self.limits: dict[str, Any] = {}
        for k, b in limits.items():  # one constraint per cost, one per part of a peak
            split = parts(polys[k])
            for i, part in enumerate(split):
                cname = k if len(split) == 1 else f"{k}[{i}]"
                self.costs.append(build_cost(cname, part, b, space, self.var_of, lattice.values))
                self.limits[cname] = b

    def points(self, idx: np.ndarray) -> np.ndarray:
        """Widths per variable for rows of value indices."""

        return self._padded[self._rows, idx]

    def objective(self, idx: np.ndarray) -> np.ndarray:
        import numpy as np

        out = np.zeros(len(idx))
        for j in range(self.n):
            out += self.tables[j][idx[:, j]]
        return out

    def fits(self, idx: np.ndarray) -> np.ndarray:
        import numpy as np

        pts = self.points(idx)
        ok = np.ones(len(idx), dtype=bool)
        for c in self.costs:
            ok &= c.fits(pts)
        return ok

    def widths(self, idx: Sequence[int] | np.ndarray) -> tuple[int, ...]:
        """The full width vector (per group) of one point."""
        out = list(self.space.base_widths)
        for j, c in enumerate(self.classes):
            for g in c:
                out[g] = int(self.values[j][idx[j]])
        return tuple(out)

    def check_exact(self, widths: Sequence[int]) -> None:
        """Every budget on the exact posynomials (a guard on the scaled arithmetic)."""
        for c in self.costs:
            value = c.poly(widths)
            limit = self.limits[c.name]
            if value > limit:  # pragma: no cover - the scaled arithmetic is exact
                raise SolverError(
                    f"the lattice search picked widths over the {cost_label(c.name)} budget "
                    f"({describe_cost(c.name, value)} > {describe_cost(c.name, limit)})"
                )


def cartesian(sizes: Sequence[int]) -> np.ndarray:
    import numpy as np

    if not sizes:
        return np.zeros((1, 0), dtype=np.int64)
    grids = np.meshgrid(*[np.arange(k) for k in sizes], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def enumerate_best(
    model: LatticeModel, domains: Sequence[np.ndarray]
) -> tuple[np.ndarray | None, float]:
    """The best feasible point over the product of ``domains`` (value indices per variable)."""
    import numpy as np

    sub = cartesian([len(d) for d in domains])
    idx = np.stack([domains[j][sub[:, j]] for j in range(model.n)], axis=1)
    ok = model.fits(idx)
    if not ok.any():
        return None, -math.inf
    obj = np.where(ok, model.objective(idx), -np.inf)
    best = int(np.argmax(obj))
    return idx[best], float(obj[best])


def greedy(model: LatticeModel, start: np.ndarray) -> np.ndarray:
    """Today's rounding on the lattice's variables: from ``start`` (value indices), repair (one
    step down at a time, least objective lost per share of the exceeded budgets saved) until
    every budget holds, then fill (one step up, most gained per share used) while all hold.

    Raises:
        RoundingError: the smallest point exceeds a budget.
    """
    import numpy as np

    idx = np.array(start, dtype=np.int64)
    sizes = np.array([len(v) for v in model.values])

    def neighbours(direction: int) -> np.ndarray:
        js = np.nonzero((idx + direction >= 0) & (idx + direction < sizes))[0]
        cand = np.repeat(idx[None, :], len(js), axis=0)
        cand[np.arange(len(js)), js] += direction
        return cand

    def shares(rows: np.ndarray) -> np.ndarray:
        pts = model.points(rows)
        cols = [c(pts).astype(float) / float(c.limit) for c in model.costs]
        return np.stack(cols, axis=1) if cols else np.zeros((len(rows), 0))

    while True:
        pts = model.points(idx[None, :])
        over = np.array([not c.fits(pts)[0] for c in model.costs], dtype=bool)
        if not over.any():
            break
        cand = neighbours(-1)
        if not len(cand):
            raise RoundingError("the smallest widths on the lattice still exceed the budget")
        s0, s = shares(idx[None, :])[0], shares(cand)
        saved = (s0[over] - s[:, over]).sum(axis=1)
        loss = model.objective(idx[None, :])[0] - model.objective(cand)
        score = np.where(saved > 0, loss / np.maximum(saved, 1e-300), np.inf)
        if not np.isfinite(score).any():
            raise RoundingError("no step down on the lattice lowers the exceeded budget")
        idx = cand[int(np.argmin(score))]
    while True:
        cand = neighbours(+1)
        if not len(cand):
            break
        ok = model.fits(cand)
        gain = model.objective(cand) - model.objective(idx[None, :])[0]
        used = np.clip(shares(cand) - shares(idx[None, :])[0], 0, None).sum(axis=1)
        score = np.where(used > 0, gain / np.maximum(used, 1e-300), np.inf)
        valid = ok & (gain > 0)
        if not valid.any():
            break
        idx = cand[int(np.argmax(np.where(valid, score, -np.inf)))]
    return idx
