"""Exact max-sum over a lattice's coupling graph, by variable elimination (see
:mod:`widthsearch.solve.lattice`).

The Lagrangian of a lattice search with multipliers ``λ`` on its budgets has the inner problem

    max_v  Σ_j t_j(v_j) - Σ_k λ_k [ Σ_j U_kj(v_j) + Σ_(i,j) c_k,ij v_i v_j ]

over the lattice: a pairwise max-sum problem on the graph whose edges are the products of two
variables' widths in some cost. This module solves it exactly for a batch of ``λ`` at once, by
eliminating the variables one at a time in a greedy (smallest table first) order: eliminating
``z`` adds every table that involves it and maximizes over ``z``, leaving a table over its
neighbours. On the backbones we see the graph is a chain of residual-stream variables with short
paths hanging off it (treewidth 1-2), so no table has more than a few hundred entries.

Two things keep it small where it would not be:

- **Concatenation sums.** A layer that reads a channel concatenation costs ``c v_b Σ_a v_a``:
  DenseNet's bottlenecks read every earlier growth group, which makes the graph a near clique
  (treewidth 25). Such a sum becomes a variable of its own (its domain: every reachable sum),
  built as a chain of additions ``S' = S + v_a`` that prefixes share, and the additions are
  eliminated by substitution (a gather, not a maximization). The treewidth drops to 2 with
  domains of about a hundred sums. Exact.
- **Relaxed edges.** Where a table would still exceed :data:`TABLE_LIMIT` entries, products are
  replaced by their tangent in the log widths, ``v_i v_j >= p_i p_j (1 + log(v_i/p_i) +
  log(v_j/p_j))`` (``exp`` is convex), which is separable: the cost only shrinks, so the
  Lagrangian stays an upper bound (no longer exact for the inner problem, still valid).

Besides the value, a pass gives the maximizing point (decoding backwards) and, with a second,
downward pass, every value's *max-marginal*: the best the inner problem can do with that variable
at that value, which bounds every point that uses it. Private to the lattice search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel

TABLE_LIMIT = 40_000
"""Largest table (entries per multiplier) an elimination step may build before edges relax."""
SUM_DOMAIN_LIMIT = 2_048
"""Largest domain a concatenation sum may take; above it the sum is not introduced."""
_NEG = -math.inf


@dataclass
class Coupling:
    """The inner problem's data: variables (the lattice's, then concatenation sums), objective
    tables, per-cost unary terms, pairwise products and additions ``y = x + v``."""

    n: int
    """Lattice variables (the first ``n``); the rest are sums."""
    values: list[np.ndarray]
    """Each variable's values (widths, or reachable sums), increasing."""
    tables: list[np.ndarray]
    """Objective term per lattice variable and value."""
    unary: list[np.ndarray]
    """Per lattice variable: costs (K x values) of its own terms (linear, square, relaxed)."""
    edges: dict[tuple[int, int], np.ndarray]
    """``(i, j)`` with ``i < j`` -> per-cost coefficient of ``v_i v_j``."""
    additions: list[tuple[int, int, int]]
    """``(x, v, y)``: ``value(y) = value(x) + value(v)``."""
    constant: np.ndarray
    """Per cost: the constant term (after relaxation's offsets)."""
    relaxed: int = 0
    """Products replaced by their log tangent."""


def coupling(model: LatticeModel, *, sums: bool = True) -> Coupling:
    """The inner problem of ``model``'s Lagrangian, with concatenation sums where they help."""
    import numpy as np

    n = model.n
    costs = model.costs
    k_costs = len(costs)
    values = [v.astype(float) for v in model.values]
    unary = []
    for j in range(n):
        v = values[j]
        rows = [float(c.lin[j]) * v + float(c.sq[j]) * v * v for c in costs]
        unary.append(np.array(rows).reshape(k_costs, len(v)))
    edges: dict[tuple[int, int], np.ndarray] = {}
    for k, c in enumerate(costs):
        for i, j in zip(*np.nonzero(c.pair), strict=True):
            key = (int(i), int(j))
            if key not in edges:
                edges[key] = np.zeros(k_costs)
            edges[key][k] += float(c.pair[i, j])
    constant = np.array([float(c.c0) for c in costs])
    problem = Coupling(n, values, list(model.tables), unary, edges, [], constant)
    if sums:
        _add_sums(model, problem)
    return problem


def _concatenations(model: LatticeModel) -> list[tuple[tuple[int, ...], int]]:
    """(variables of a concatenation, the variable it meets in a layer), for every layer that
    reads (or writes) a concatenation of at least three variables against one variable."""
    found = []
    var_of = model.var_of
    for layer in model.space.layers:
        ins = sorted({var_of[g] for g in layer.in_groups if g in var_of})
        outs = sorted({var_of[g] for g in layer.out_groups if g in var_of})
        for side, other in ((ins, outs), (outs, ins)):
            if len(side) >= 3 and len(other) == 1 and other[0] not in side:
                found.append((tuple(side), other[0]))
    return sorted(set(found), key=lambda t: (len(t[0]), t))


def _add_sums(model: LatticeModel, problem: Coupling) -> None:
    """Replace ``Σ_a c v_a v_b`` over a concatenation ``a in A`` by ``c S_A v_b``, ``S_A`` a new
    variable built from additions (prefix sums shared between concatenations)."""
    import numpy as np

    built: dict[frozenset[int], int] = {}
    for members, b in _concatenations(model):
        coef = np.min(
            [
                problem.edges.get((min(a, b), max(a, b)), np.zeros(len(problem.constant)))
                for a in members
            ],
            axis=0,
        )
        if not coef.any():
            continue
        total = _sum_variable(problem, built, members)
        if total is None:
            continue
        for a in members:
            key = (min(a, b), max(a, b))
            rest = problem.edges[key] - coef
            if rest.any():
                problem.edges[key] = rest
            else:
                del problem.edges[key]
        key = (min(total, b), max(total, b))
        problem.edges[key] = problem.edges.get(key, 0) + coef


def _sum_variable(
    problem: Coupling, built: dict[frozenset[int], int], members: Sequence[int]
) -> int | None:
    """The variable holding ``Σ members``, built from the largest sum already built."""
    import numpy as np

    target = frozenset(members)
    if target in built:
        return built[target]
    base = max((s for s in built if s < target), key=len, default=frozenset())
    rest = [m for m in members if m not in base]
    if base:
        current, have = built[base], set(base)
    else:
        current, have = rest[0], {rest[0]}
        rest = rest[1:]
    for m in rest:
        have.add(m)
        key = frozenset(have)
        if key in built:
            current = built[key]
            continue
        dom = np.unique(problem.values[current][:, None] + problem.values[m][None, :])
        if len(dom) > SUM_DOMAIN_LIMIT:
            return None
        problem.values.append(dom)
        y = len(problem.values) - 1
        problem.additions.append((current, m, y))
        built[key] = current = y
    return current


@dataclass
class Step:
    """Eliminating one variable: the table over its clique and where its message goes."""

    z: int
    sub: bool
    """Eliminated by substitution through an addition (no maximization)."""
    scope: tuple[int, ...]
    """The clique's variables, row-major; a maximized ``z`` is last."""
    shape: tuple[int, ...]
    t0: np.ndarray
    """The objective's part of the table (``-inf`` where a substitution has no value)."""
    q: np.ndarray
    """The costs' part (K x entries), times ``λ`` and subtracted."""
    unary: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(lattice variable, its value index per entry): the masks of a node apply here."""
    children: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(step, entry -> index into that step's message; its size where invalid)."""
    zindex: np.ndarray | None = None
    """Substitution: ``z``'s value index per entry (-1 where none)."""
    segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    """Per child: entry order, segment starts and the message entries they reach (downward)."""

    @property
    def message_size(self) -> int:
        return int(math.prod(self.shape[:-1] if not self.sub else self.shape))


@dataclass
class Solved:
    """A batch of inner problems solved: values, maximizers, and optionally max-marginals."""

    value: np.ndarray
    """Per multiplier row: the inner maximum (without the ``λ · budget`` term)."""
    index: np.ndarray
    """Per row: value index of every variable (lattice variables first)."""
    cost: np.ndarray
    """Per row and cost: the (relaxed) cost at the maximizer."""
    marginals: list[np.ndarray] | None = None
    """Per lattice variable: rows x values, the best with that variable at that value."""
    messages: list[np.ndarray] | None = None
    """Per step: rows x message entries, the best of its subtree (with ``marginals``)."""
    outside: list[np.ndarray] | None = None
    """Per step: rows x message entries, the best of everything outside its subtree."""


class MaxSum:
    """An elimination plan for one coupling, evaluated for batches of multipliers."""

    def __init__(self, problem: Coupling) -> None:
        """The plan for ``problem``; products relax (log tangents) only where a table would
        exceed :data:`TABLE_LIMIT`.

        Raises:
            ValueError: no order fits even with every product of two lattice variables
                relaxed (a concatenation sum's own tables are too large).
        """
        self.problem = problem
        self.k = len(problem.constant)
        self.steps: list[Step] = []
        order, _ = _order(problem)
        while order is None:
            if not _relax_one(problem):
                raise ValueError("no elimination order fits the table limit")
            order, _ = _order(problem)
        self._build(order)

    @classmethod
    def of(cls, model: LatticeModel) -> MaxSum:
        """The plan for ``model``: with concatenation sums where they make the tables smaller
        (and fit), else without."""
        plain = coupling(model, sums=False)
        with_sums = coupling(model, sums=True)
        if with_sums.additions:
            _, cost_sums = _order(with_sums)
            _, cost_plain = _order(plain)
            if cost_sums <= cost_plain:
                try:
                    return cls(with_sums)
                except ValueError:
                    pass
        return cls(plain)

    def _build(self, order: list[tuple[int, bool, tuple[int, int, int] | None]]) -> None:
        """Tables and index maps of every step, from the elimination order."""
        import numpy as np

        p = self.problem
        sizes = [len(v) for v in p.values]
        pending: list[tuple[tuple[int, ...], str, Any]] = []
        # factors: (scope, kind, payload); kind "unary" (var), "edge" (coef), "message" (step)
        for j in range(p.n):
            pending.append(((j,), "unary", j))
        for (i, j), coef in p.edges.items():
            pending.append(((i, j), "edge", coef))
        for z, sub, addition in order:
            mine = [f for f in pending if z in f[0]]
            pending = [f for f in pending if z not in f[0]]
            others = sorted({u for f in mine for u in f[0]} - {z})
            if addition is not None:
                others = sorted(set(others) | (set(addition) - {z}))
            scope = tuple(others) if sub else (*others, z)
            shape = tuple(sizes[u] for u in scope)
            entries = int(math.prod(shape))
            grids = (
                np.indices(shape).reshape(len(scope), entries) if scope else np.zeros((0, 1), int)
            )
            pos = {u: grids[a] for a, u in enumerate(scope)}
            valid = np.ones(entries, dtype=bool)
            zindex = None
            if sub:
                assert addition is not None
                x, v, y = addition
                val = p.values
                if z == y:
                    target = val[x][pos[x]] + val[v][pos[v]]
                elif z == x:
                    target = val[y][pos[y]] - val[v][pos[v]]
                else:
                    target = val[y][pos[y]] - val[x][pos[x]]
                zi = np.searchsorted(val[z], target)
                zi = np.minimum(zi, sizes[z] - 1)
                ok = val[z][zi] == target
                zindex = np.where(ok, zi, -1)
                valid &= ok
                pos[z] = np.where(ok, zi, 0)
            t0 = np.where(valid, 0.0, _NEG)
            q = np.zeros((self.k, entries))
            step = Step(z, sub, scope, shape, t0, q, zindex=zindex)
            for fscope, kind, payload in mine:
                if kind == "unary":
                    j = int(payload)
                    idx = pos[j]
                    step.t0 = step.t0 + np.where(valid, p.tables[j][idx], 0.0)
                    step.q += np.where(valid, p.unary[j][:, idx], 0.0)
                    step.unary.append((j, idx))
                elif kind == "edge":
                    i, j = fscope
                    prod = p.values[i][pos[i]] * p.values[j][pos[j]]
                    step.q += np.where(valid, np.outer(payload, prod), 0.0)
                else:
                    c = int(payload)
                    child = self.steps[c]
                    cscope = child.scope if child.sub else child.scope[:-1]
                    flat = np.zeros(entries, dtype=np.int64)
                    for u in cscope:
                        flat = flat * sizes[u] + pos[u]
                    flat = np.where(valid, flat, child.message_size)
                    step.children.append((c, flat))
                    order_ = np.argsort(flat, kind="stable")
                    keep = order_[flat[order_] < child.message_size]
                    targets, starts = np.unique(flat[keep], return_index=True)
                    step.segments.append((keep, starts, targets))
            self.steps.append(step)
            mscope = scope if sub else scope[:-1]
            if mscope:
                pending.append((mscope, "message", len(self.steps) - 1))
        assert not pending

    # -- evaluation -------------------------------------------------------------------------

    def local(self, t: int, masks: Sequence[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """Step ``t``'s own terms per clique entry: objective (``-inf`` where a mask or a
        substitution rules the entry out) and costs (entries x K, unscaled)."""
        import numpy as np

        step = self.steps[t]
        base = step.t0
        if masks is not None:
            for j, idx in step.unary:
                m = masks[j]
                if not m.all():
                    base = base + np.where(m[idx], 0.0, _NEG)
        return base, step.q.T

    def solve(
        self,
        lams: np.ndarray,
        masks: Sequence[np.ndarray] | None = None,
        *,
        marginals: bool = False,
    ) -> Solved:
        """The inner problem for each row of ``lams`` (already divided by the budgets), with
        lattice variable ``j`` restricted to ``masks[j]`` (booleans over its values)."""
        import numpy as np

        rows = len(lams)
        tables: list[np.ndarray] = []
        gathered: list[list[np.ndarray]] = []
        messages: list[np.ndarray] = []
        bases: list[np.ndarray] = []
        for step in self.steps:
            base = step.t0
            if masks is not None:
                for j, idx in step.unary:
                    m = masks[j]
                    if not m.all():
                        base = base + np.where(m[idx], 0.0, _NEG)
            table = base[None, :] - lams @ step.q
            bases.append(table)
            ins = []
            if step.children:
                table = table.copy()
                for c, flat in step.children:
                    msg = messages[c]
                    padded = np.concatenate([msg, np.full((rows, 1), _NEG)], axis=1)
                    g = padded[:, flat]
                    ins.append(g)
                    table += g
            gathered.append(ins)
            tables.append(table)
            if step.sub:
                messages.append(table)
            else:
                messages.append(table.reshape(rows, -1, step.shape[-1]).max(axis=2))
        value = np.zeros(rows)
        for c, step in enumerate(self.steps):
            mscope = step.scope if step.sub else step.scope[:-1]
            if not mscope:
                value += messages[c].reshape(rows)
        index = self._decode(tables, rows)
        cost = self.costs(index)
        out = Solved(value, index, cost)
        if marginals:
            out.marginals, out.outside = self._marginals(tables, bases, gathered, messages, rows)
            out.messages = messages
        return out

    def _decode(self, tables: list[np.ndarray], rows: int) -> np.ndarray:
        """The maximizing value index of every variable, eliminated last first."""
        import numpy as np

        p = self.problem
        sizes = [len(v) for v in p.values]
        index = np.zeros((rows, len(p.values)), dtype=np.int64)
        r = np.arange(rows)
        for s in range(len(self.steps) - 1, -1, -1):
            step = self.steps[s]
            others = step.scope if step.sub else step.scope[:-1]
            flat = np.zeros(rows, dtype=np.int64)
            for u in others:
                flat = flat * sizes[u] + index[:, u]
            if step.sub:
                assert step.zindex is not None
                index[:, step.z] = step.zindex[flat]
            else:
                dz = step.shape[-1]
                cols = flat[:, None] * dz + np.arange(dz)[None, :]
                index[:, step.z] = np.argmax(tables[s][r[:, None], cols], axis=1)
        return index

    def costs(self, index: np.ndarray) -> np.ndarray:
        """The (relaxed) costs of rows of value indices: rows x K."""
        import numpy as np

        p = self.problem
        out = np.tile(p.constant, (len(index), 1))
        for j in range(p.n):
            out += p.unary[j][:, index[:, j]].T
        for (i, j), coef in p.edges.items():
            out += np.outer(p.values[i][index[:, i]] * p.values[j][index[:, j]], coef)
        return out

    def _marginals(
        self,
        tables: list[np.ndarray],
        bases: list[np.ndarray],
        gathered: list[list[np.ndarray]],
        messages: list[np.ndarray],
        rows: int,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Max-marginals of the lattice variables, and every step's outside message: the
        downward pass of the junction tree."""
        import numpy as np

        # a root's outside is the best of the other parts of the graph (variables that share
        # no cost term with its part: a memory budget alone couples none)
        roots = [s for s, step in enumerate(self.steps) if not step.sub and len(step.scope) == 1]
        total = sum((messages[r] for r in roots), np.zeros((rows, 1)))
        outside: list[np.ndarray] = [np.zeros((rows, 1)) for _ in self.steps]
        for r in roots:
            outside[r] = total - messages[r]
        marg: list[np.ndarray] = [np.zeros(0)] * self.problem.n
        for s in range(len(self.steps) - 1, -1, -1):
            step = self.steps[s]
            out = outside[s]
            full = out if step.sub else np.repeat(out, step.shape[-1], axis=1)
            belief = tables[s] + full
            if not step.sub and step.z < self.problem.n:
                marg[step.z] = belief.reshape(rows, -1, step.shape[-1]).max(axis=1)
            for a, (c, _) in enumerate(step.children):
                rest = bases[s] + full
                for b, g in enumerate(gathered[s]):
                    if b != a:
                        rest = rest + g
                keep, starts, targets = step.segments[a]
                size = self.steps[c].message_size
                o = np.full((rows, size), _NEG)
                if len(keep):
                    o[:, targets] = np.maximum.reduceat(rest[:, keep], starts, axis=1)
                outside[c] = o
        return marg, outside


def _order(
    problem: Coupling,
) -> tuple[list[tuple[int, bool, tuple[int, int, int] | None]] | None, float]:
    """A greedy elimination order (smallest table first) and its total table size; None when
    some step would exceed :data:`TABLE_LIMIT`."""
    sizes = [len(v) for v in problem.values]
    count = len(sizes)
    adj: list[set[int]] = [set() for _ in range(count)]
    for i, j in problem.edges:
        adj[i].add(j)
        adj[j].add(i)
    adds_of: list[set[int]] = [set() for _ in range(count)]
    for a, (x, v, y) in enumerate(problem.additions):
        for u in (x, v, y):
            adds_of[u].add(a)
            adj[u] |= {x, v, y} - {u}
    remaining = set(range(count))
    order: list[tuple[int, bool, tuple[int, int, int] | None]] = []
    total = 0.0

    def cost(z: int) -> tuple[float, bool]:
        table = math.prod(sizes[u] for u in adj[z])
        if not adds_of[z]:
            return table * sizes[z], False
        if z >= problem.n and len(adds_of[z]) == 1:
            return table, True
        return math.inf, False

    while remaining:
        best = min(remaining, key=lambda z: (cost(z)[0], len(adj[z]), z))
        size, sub = cost(best)
        if size > TABLE_LIMIT:
            return None, math.inf
        addition = None
        if sub:
            a = adds_of[best].pop()
            addition = problem.additions[a]
            for u in addition:
                adds_of[u].discard(a)
        nbrs = adj[best]
        for u in nbrs:
            adj[u] |= nbrs - {u}
            adj[u].discard(best)
        remaining.discard(best)
        order.append((best, sub, addition))
        total += size
    return order, total


def _relax_one(problem: Coupling) -> bool:
    """Replace the product of the highest-degree lattice variable's weakest edge by its log
    tangent at the variables' geometric mid widths (a separable lower bound of the cost);
    False when no product of two lattice variables is left."""
    import numpy as np

    degree = [0] * len(problem.values)
    for i, j in problem.edges:
        degree[i] += 1
        degree[j] += 1
    candidates = [e for e in problem.edges if e[0] < problem.n and e[1] < problem.n]
    if not candidates:
        return False
    i, j = max(candidates, key=lambda e: (max(degree[e[0]], degree[e[1]]), -problem.edges[e].max()))
    coef = problem.edges.pop((i, j))
    vi, vj = problem.values[i], problem.values[j]
    pi, pj = math.sqrt(vi[0] * vi[-1]), math.sqrt(vj[0] * vj[-1])
    scale = coef * pi * pj
    problem.unary[i] = problem.unary[i] + np.outer(scale, np.log(vi / pi))
    problem.unary[j] = problem.unary[j] + np.outer(scale, np.log(vj / pj))
    problem.constant = problem.constant + scale
    problem.relaxed += 1
    return True


__all__ = ["TABLE_LIMIT", "Coupling", "MaxSum", "Solved", "coupling"]
