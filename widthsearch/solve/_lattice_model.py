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
    _sym: np.ndarray | None = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Costs (scaled) at ``points`` (rows of widths per variable)."""
        points = points.astype(self.lin.dtype, copy=False)
        out = points @ self.lin + (points * points) @ self.sq
        out += ((points @ self.pair) * points).sum(axis=1)
        return out + self.c0

    def fits(self, points: np.ndarray) -> np.ndarray:
        return self(points) <= self.limit

    def changes(self, point: np.ndarray, js: np.ndarray, new: np.ndarray) -> np.ndarray:
        """How much the cost changes from ``point`` (widths per variable) when variable
        ``js[r]`` takes width ``new[r]``, for every ``r``: ``lin δ + sq (new² - old²) +
        δ Σ_i P_ji v_i`` (exact in the scaled integers, as the cost itself is)."""
        import numpy as np

        if self._sym is None:
            self._sym = (self.pair + self.pair.T).astype(float)
        v = np.asarray(point, dtype=float)
        old = v[js]
        delta = new - old
        lin, sq = self.lin.astype(float), self.sq.astype(float)
        return lin[js] * delta + sq[js] * (new * new - old * old) + delta * (self._sym[js] @ v)


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
        self._scores = np.full((n, width), -np.inf)
        for j, table in enumerate(self.tables):
            self._scores[j, : len(table)] = table
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
        """The objective at rows of value indices."""
        return self._scores[self._rows, idx].sum(axis=1)

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


_CHUNK = 1 << 22
"""Entries (points x variables) evaluated per batch when enumerating."""


def product_rows(domains: Sequence[np.ndarray], start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the product of ``domains`` (value indices per variable), in
    row-major order, decoded digit by digit: only the variables with more than one value
    vary, and no grid of all the variables is built (numpy's grids stop at 32 dimensions)."""
    import numpy as np

    n = len(domains)
    flat = np.arange(start, stop, dtype=np.int64)
    out = np.empty((len(flat), n), dtype=np.int64)
    for j in range(n - 1, -1, -1):
        d = domains[j]
        if len(d) == 1:
            out[:, j] = d[0]
        else:
            flat, digit = np.divmod(flat, len(d))
            out[:, j] = d[digit]
    return out


def enumerate_top(
    model: LatticeModel, domains: Sequence[np.ndarray], k: int = 1
) -> tuple[np.ndarray, np.ndarray, float]:
    """The best ``k`` fitting points of the product of ``domains``, best first (rows of value
    indices, objectives), and the best objective of the other fitting points (``-inf`` if
    none); equal objectives keep enumeration order."""
    import numpy as np

    total = math.prod(len(d) for d in domains)
    step = max(1, _CHUNK // max(model.n, 1))
    best = np.zeros((0, model.n), dtype=np.int64)
    best_obj = np.zeros(0)
    rest = -math.inf
    for start in range(0, total, step):
        idx = product_rows(domains, start, min(total, start + step))
        ok = model.fits(idx)
        if not ok.any():
            continue
        idx = idx[ok]
        rows = np.concatenate([best, idx])
        objs = np.concatenate([best_obj, model.objective(idx)])
        order = np.argsort(-objs, kind="stable")
        if len(order) > k:
            rest = max(rest, float(objs[order[k]]))
        best, best_obj = rows[order[:k]], objs[order[:k]]
    return best, best_obj, rest


def greedy(model: LatticeModel, start: np.ndarray) -> np.ndarray:
    """Today's rounding on the lattice's variables: from ``start`` (value indices), repair (one
    step down at a time, least objective lost per share of the exceeded budgets saved) until
    every budget holds, then fill (one step up, most gained per share used) while all hold.
    Each step scores every candidate by its cost change (:meth:`Cost.changes`), so a step costs
    one matrix-vector product per budget, not a cost evaluation per candidate.

    Raises:
        RoundingError: the smallest point exceeds a budget.
    """
    import numpy as np

    idx = np.array(start, dtype=np.int64)
    sizes = np.array([len(v) for v in model.values])
    limits = np.array([float(c.limit) for c in model.costs])
    rows = np.arange(model.n)

    def candidates(direction: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Variables that can step, their new index, objective change and new costs."""
        js = np.nonzero((idx + direction >= 0) & (idx + direction < sizes))[0]
        ks = idx[js] + direction
        point = model._padded[rows, idx]
        new = model._padded[js, ks]
        now = np.array([float(c(point[None, :])[0]) for c in model.costs])
        costs = np.zeros((len(js), len(model.costs)))
        for i, c in enumerate(model.costs):
            costs[:, i] = now[i] + c.changes(point, js, new)
        gain = model._scores[js, ks] - model._scores[js, idx[js]]
        return js, ks, gain, costs

    while True:
        pts = model.points(idx[None, :])
        now = np.array([float(c(pts)[0]) for c in model.costs])
        over = now > limits
        if not over.any():
            break
        js, ks, gain, costs = candidates(-1)
        if not len(js):
            raise RoundingError("the smallest widths on the lattice still exceed the budget")
        saved = (now[over] / limits[over] - costs[:, over] / limits[over]).sum(axis=1)
        score = np.where(saved > 0, -gain / np.maximum(saved, 1e-300), np.inf)
        if not np.isfinite(score).any():
            raise RoundingError("no step down on the lattice lowers the exceeded budget")
        i = int(np.argmin(score))
        idx[js[i]] = ks[i]
    while True:
        js, ks, gain, costs = candidates(+1)
        if not len(js):
            break
        pts = model.points(idx[None, :])
        now = np.array([float(c(pts)[0]) for c in model.costs])
        ok = (costs <= limits[None, :]).all(axis=1)
        used = np.clip(costs / limits - now / limits, 0, None).sum(axis=1)
        score = np.where(used > 0, gain / np.maximum(used, 1e-300), np.inf)
        valid = ok & (gain > 0)
        if not valid.any():
            break
        i = int(np.argmax(np.where(valid, score, -np.inf)))
        idx[js[i]] = ks[i]
    if not model.fits(idx[None, :])[0]:  # pragma: no cover - the cost changes are exact
        raise RoundingError("the repaired widths exceed a budget; report this")
    return idx
