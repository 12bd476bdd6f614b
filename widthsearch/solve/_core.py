"""Every lattice point above a threshold, by dynamic programming over partial points pruned by
Lagrangian bounds (see :mod:`widthsearch.solve.lattice`).

The elimination plan of :class:`~widthsearch.solve._maxsum.MaxSum` is also a plan for the
constrained problem: eliminating variables in its order, a *partial point* assigns the variables
of one subtree of the junction tree, and its objective and (exact, scaled-integer) costs are
sums of the terms inside the subtree. Where the Lagrangian pass computes one number per
separator value (the best partial point at multipliers ``λ``), this pass keeps every partial
point whose bound

    obj - λ · cost / B  +  (the best of the rest at λ: the downward pass's outside message)
                        +  λ · (1 - const / B)

is above a threshold ``θ`` for each of a few multipliers ``λ`` (a bound for any completion of
it, so nothing above ``θ`` is lost), joined child by child and pruned after each join (a
child's partial points are sorted by their bound at the first multipliers, so only the prefix
that can pass is joined). For the best point, a partial point that another with the same
separator value dominates (costs no more in any budget, gains at least as much) is dropped, and
of equal ones one stays: the permutations of identical blocks become one. For the best ``k``,
at most ``k`` of equal ones stay and (with one budget) any that ``k`` others dominate goes.
At the root the survivors that fit every budget are the lattice points above ``θ``: the best
of them is the optimum, or there is none and ``θ`` bounds every point. Private to the lattice
search.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from widthsearch.solve._lattice_model import LatticeModel
    from widthsearch.solve._maxsum import MaxSum

STATE_LIMIT = 1_000_000
"""Partial points a pass may keep (summed over its steps, or joined at once) before it gives
up: its threshold was too low for the time it would take."""


@dataclass
class Above:
    """The lattice points above a threshold that one pass found."""

    complete: bool
    """The pass finished: ``points`` are all the fitting points above the threshold (up to
    ``k``, best first)."""
    points: list[tuple[np.ndarray, float]] = field(default_factory=list)
    states: int = 0
    """Partial points kept, summed over the steps."""
    more: float = -math.inf
    """The best objective above the threshold beyond the ``k`` returned."""


@dataclass
class _States:
    """The partial points a step keeps, sorted by separator value, then by ``lag``."""

    sep: np.ndarray
    """Index of the separator's values (the step's message entry)."""
    cost: np.ndarray
    obj: np.ndarray
    entry: np.ndarray
    """The clique entry each came from (its eliminated variable's value)."""
    ptrs: np.ndarray
    """Per child of the step: the child's state it joined."""
    lag: np.ndarray
    """``obj - cost · λ/B`` at the first multipliers, decreasing within a separator value."""


@dataclass
class Prepared:
    """What every pass over the same multipliers and masks shares: per step, its own terms
    and the bound of everything outside a partial point (per entry and multiplier)."""

    scaled: np.ndarray
    """Multipliers divided by the budgets."""
    shift: np.ndarray
    """Per multiplier: the Lagrangian's constant term ``λ · (1 - const / B)``."""
    local: list[tuple[np.ndarray, np.ndarray]]
    """Per step: objective and costs of its own terms, per entry."""
    ins: list[list[np.ndarray]]
    """Per step and child: entries x multipliers, the best of the child's subtree."""
    rest: list[np.ndarray]
    """Per step: entries x multipliers, the best outside the step's subtree plus every
    child's best (and the multipliers' constant term)."""
    roots: list[int]
    root_best: list[np.ndarray]
    """Per root: the best of its part of the graph, per multiplier."""


def prepare(
    model: LatticeModel, plan: MaxSum, masks: Sequence[np.ndarray], lams: np.ndarray
) -> Prepared:
    """The Lagrangian's inside and outside messages at every row of ``lams`` (multipliers
    per budget), arranged for :func:`points_above`."""
    import numpy as np

    problem = plan.problem
    limit = np.array([float(c.limit) for c in model.costs])
    scaled = lams / limit
    shift = lams @ (1 - problem.constant / limit)
    solved = plan.solve(scaled, masks, marginals=True)
    assert solved.messages is not None and solved.outside is not None
    msgs, outs = solved.messages, solved.outside
    rows = len(lams)
    local, ins_all, rests = [], [], []
    for t, step in enumerate(plan.steps):
        local.append(plan.local(t, masks))
        dz = 1 if step.sub else step.shape[-1]
        out_full = outs[t] if step.sub else np.repeat(outs[t], dz, axis=1)
        ins = []
        for c, flat in step.children:
            padded = np.concatenate([msgs[c], np.full((rows, 1), -np.inf)], axis=1)
            ins.append(np.ascontiguousarray(padded[:, flat].T))
        rest = out_full.T + (np.sum(ins, axis=0) if ins else 0.0) + shift[None, :]
        ins_all.append(ins)
        rests.append(rest)
    roots = [t for t, step in enumerate(plan.steps) if not step.sub and len(step.scope) == 1]
    return Prepared(scaled, shift, local, ins_all, rests, roots, [msgs[r][:, 0] for r in roots])


def points_above(
    model: LatticeModel,
    plan: MaxSum,
    prepared: Prepared,
    threshold: float,
    *,
    k: int,
    deadline: float,
    state_limit: int = STATE_LIMIT,
) -> Above:
    """The (up to ``k``) best fitting lattice points with objective above ``threshold``,
    pruning with the Lagrangian bound at each of ``prepared``'s multipliers."""
    import numpy as np

    problem = plan.problem
    limit = np.array([float(c.limit) for c in model.costs])
    scaled = prepared.scaled
    cut = threshold - 1e-9
    kept: list[_States] = []
    total = 0
    for t, step in enumerate(plan.steps):
        if time.perf_counter() > deadline:
            return Above(False, states=total)
        obj0, cost0 = prepared.local[t]
        ins, rest = prepared.ins[t], prepared.rest[t]
        e = np.nonzero(np.isfinite(obj0))[0]
        e = e[_alive(obj0[e], cost0[e], rest[e], scaled, cut)]
        cost, obj = cost0[e], obj0[e]
        links: list[tuple[np.ndarray, np.ndarray]] = []  # per join: (previous state, child state)
        for a, (c, flat) in enumerate(step.children):
            child = kept[c]
            rest = rest - ins[a]
            # the child's states of each separator value are sorted by their Lagrangian value
            # at the first multipliers: only a prefix of them can pass that bound
            need = cut - (obj - cost @ scaled[0] + rest[e, 0])
            lo = np.searchsorted(child.sep, flat[e], "left")
            hi = _prefix_end(child.lag, lo, np.searchsorted(child.sep, flat[e], "right"), need)
            counts = hi - lo
            size = int(counts.sum())
            if size > state_limit:
                return Above(False, states=total + size)
            rep = np.repeat(np.arange(len(e)), counts)
            offs = np.arange(size) - np.repeat(np.cumsum(counts) - counts, counts)
            cid = lo[rep] + offs
            e, cost, obj = e[rep], cost[rep] + child.cost[cid], obj[rep] + child.obj[cid]
            keep = _alive(obj, cost, rest, scaled, cut, e, skip_first=True)
            e, cost, obj = e[keep], cost[keep], obj[keep]
            links.append((rep[keep], cid[keep]))
            if time.perf_counter() > deadline:
                return Above(False, states=total + len(e))
        dz = 1 if step.sub else step.shape[-1]
        sep = e if step.sub else e // dz
        order = _reduce(sep, cost, obj, k)
        lag = obj[order] - cost[order] @ scaled[0]
        order = order[np.lexsort((-lag, sep[order]))]
        ptrs = np.zeros((len(order), len(links)), dtype=np.int64)
        at = order
        for a in range(len(links) - 1, -1, -1):
            prev, cid = links[a]
            ptrs[:, a] = cid[at]
            at = prev[at]
        kept.append(
            _States(
                sep[order],
                cost[order],
                obj[order],
                e[order],
                ptrs,
                obj[order] - cost[order] @ scaled[0],
            )
        )
        total += len(order)
        if total > state_limit:
            return Above(False, states=total)
    final = _join_roots(kept, prepared, cut, state_limit)
    if final is None:
        return Above(False, states=total)
    cost, obj, picks = final
    fits = ((cost + problem.constant[None, :]) <= limit[None, :]).all(axis=1) & (obj > cut)
    idx = np.nonzero(fits)[0]
    idx = idx[np.argsort(-obj[idx], kind="stable")]
    out = Above(True, states=total)
    if len(idx) > k:
        out.more = float(obj[idx[k]])
    for i in idx[:k]:
        start = [(r, int(picks[i, a])) for a, r in enumerate(prepared.roots)]
        point = _decode(plan, kept, start)
        out.points.append((point[: model.n], float(obj[i])))
    return out


def _alive(
    obj: np.ndarray,
    cost: np.ndarray,
    rest: np.ndarray,
    scaled: np.ndarray,
    cut: float,
    entry: np.ndarray | None = None,
    *,
    skip_first: bool = False,
) -> np.ndarray:
    """Indices of the states whose bound is above ``cut`` at every multiplier: ``obj - cost ·
    λ/B + rest[entry]`` (``rest``: per entry and multiplier, the best of everything else),
    one multiplier at a time on the survivors of the ones before."""
    import numpy as np

    alive = np.arange(len(obj))
    for r in range(1 if skip_first else 0, len(scaled)):
        if not len(alive):
            break
        at = alive if entry is None else entry[alive]
        bound = obj[alive] - cost[alive] @ scaled[r] + rest[at, r]
        alive = alive[bound > cut]
    return alive


def _prefix_end(lag: np.ndarray, lo: np.ndarray, hi: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Per query, the end of the run ``lo:hi`` of ``lag`` (decreasing in it) whose values are
    above ``need``: a binary search for all queries at once."""
    import numpy as np

    lo, hi = lo.copy(), hi.copy()
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        above = np.zeros(len(lo), dtype=bool)
        above[open_] = lag[mid[open_]] > need[open_]
        lo = np.where(open_ & above, mid + 1, lo)
        hi = np.where(open_ & ~above, mid, hi)


def _reduce(sep: np.ndarray, cost: np.ndarray, obj: np.ndarray, k: int) -> np.ndarray:
    """An order of the states by separator value, without the ones that cannot change the best
    ``k`` points: with ``k == 1`` every state another of its separator value dominates (costs
    no more in any budget, gains at least as much; of equal states one stays); with more, at
    most ``k`` of equal states, and any that ``k`` others dominate (each of them completes to a
    point at least as good wherever it would)."""
    import numpy as np

    if not len(sep):
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-obj, sep))
    s, c, o = sep[order], cost[order], obj[order]
    starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(s)]]))
    if k == 1:
        dominated = _dominated_small(c, o, starts, sizes)
        for a, m in zip(starts[sizes > SMALL_GROUP], sizes[sizes > SMALL_GROUP], strict=True):
            dominated[a : a + m] |= _dominated_large(c[a : a + m], o[a : a + m])
        return order[~dominated]
    # at most k of equal states
    keys = np.lexsort((*[c[:, i] for i in range(c.shape[1])], np.round(o, 9), s))
    ks, kc, ko = s[keys], c[keys], np.round(o[keys], 9)
    same = (ks[1:] == ks[:-1]) & (ko[1:] == ko[:-1]) & (kc[1:] == kc[:-1]).all(axis=1)
    cls = np.concatenate([[0], np.cumsum(~same)])
    first = np.flatnonzero(np.concatenate([[True], ~same]))
    rank = np.arange(len(keys)) - first[cls]
    capped = np.zeros(len(order), dtype=bool)
    capped[keys[rank >= k]] = True
    kept = np.flatnonzero(~capped)
    if c.shape[1] != 1:
        return order[kept]
    # with one budget, and any state that k others of its group dominate
    s, c, o = s[kept], c[kept], o[kept]
    return order[kept[_dominators(s, c[:, 0], o, k) < k]]


def _dominators(sep: np.ndarray, cost: np.ndarray, obj: np.ndarray, k: int) -> np.ndarray:
    """With one budget, how many states of its separator value dominate each state (capped
    near ``k``): in the order by separator value, cost, objective (best first) and position,
    the states before one with at least its objective; counted by merging (each level, the
    states of a block's second half against the first half's objectives, sorted)."""
    import numpy as np

    n = len(obj)
    order = np.lexsort((np.arange(n), -obj, cost, sep))
    rank = np.unique(-obj, return_inverse=True)[1]  # 0 = best objective
    size = 1 << max(1, (n - 1).bit_length())
    grp = np.full(size, -1, dtype=np.int64)
    grp[:n] = np.unique(sep, return_inverse=True)[1][order]
    rk = np.full(size, n + 1, dtype=np.int64)
    rk[:n] = rank[order]
    count = np.zeros(size, dtype=np.int64)
    slot = np.arange(size)
    span = n + 2
    half = 1
    while half < size:
        width = 2 * half
        block = slot // width
        left = (slot % width) < half
        # a state counts states of its own block's first half, of its own separator value,
        # with at least its objective: keys (block, separator, rank), compared as one integer
        key = (block * (int(grp.max()) + 2) + grp + 1) * span + rk
        lkeys = np.sort(key[left])
        right = ~left
        lo = np.searchsorted(lkeys, (key[right] // span) * span, side="left")
        hi = np.searchsorted(lkeys, key[right], side="right")
        count[right] += hi - lo
        half = width
    out = np.zeros(n, dtype=np.int64)
    out[order] = count[:n]
    return out


SMALL_GROUP = 48
"""Groups of states up to this size are compared pair by pair; larger ones by buckets."""
BUCKETS = 48


def _dominated_small(
    cost: np.ndarray, obj: np.ndarray, starts: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """States (sorted by group, objective best first) that an earlier state of their group
    dominates (no more cost in any budget, at least the objective), for the small groups."""
    import numpy as np

    n = len(obj)
    pos = np.arange(n) - np.repeat(starts, sizes)
    small = np.repeat(sizes <= SMALL_GROUP, sizes)
    count = np.where(small, pos, 0)
    i = np.repeat(np.arange(n), count)
    j = np.repeat(np.arange(n) - pos, count) + (
        np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    )
    hit = (cost[j] <= cost[i]).all(axis=1) & (obj[j] >= obj[i] - 1e-12)
    out = np.zeros(n, dtype=bool)
    out[i[hit]] = True
    return out


def _dominated_large(cost: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """The dominated states of one large group, with one or two budgets, by divide and conquer
    on the first budget: in blocks of the states sorted by it, each state of a block's second
    half is compared with the best objective among the first half's states whose second
    budget is no higher (a running maximum over the block sorted by that budget), level by
    level, all blocks of a level at once. With three or more budgets none are marked."""
    import numpy as np

    n, k = cost.shape
    out = np.zeros(n, dtype=bool)
    if k > 2:
        return out
    c1 = cost[:, 0]
    c2 = cost[:, 1] if k == 2 else np.zeros(n)
    order = np.lexsort((-obj, c2, c1))
    size = 1 << max(1, (n - 1).bit_length())
    rank = np.full(size, n, dtype=np.int64)  # dense rank of the second budget; padding last
    rank[:n] = np.unique(c2[order], return_inverse=True)[1]
    val = np.full(size, -np.inf)
    val[:n] = obj[order]
    hit = np.zeros(size, dtype=bool)
    slot = np.arange(size)
    pos = slot  # blocks of one: trivially sorted
    half = 1
    while half < size:
        width = 2 * half
        right = (slot % width) >= half
        # each block's states by second budget, a first-half state before a tie of the second;
        # the halves are sorted already, so the stable sort merges two runs per block
        key = (slot // width) * (4 * size) + rank * 2 + right
        pos = pos[np.argsort(key[pos], kind="stable")]
        rows = pos.reshape(size // width, width)
        left_val = np.where(right[rows], -np.inf, val[rows])
        best = np.maximum.accumulate(left_val, axis=1)
        hit[rows[right[rows] & (best >= val[rows] - 1e-12)]] = True
        half = width
    out[order[np.nonzero(hit[:n])[0]]] = True
    return out


def _join_roots(
    kept: list[_States], prepared: Prepared, cut: float, state_limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Complete points: the roots' states (one per connected part of the graph) combined."""
    import numpy as np

    roots = prepared.roots
    first = kept[roots[0]]
    cost, obj = first.cost, first.obj
    picks = np.arange(len(obj))[:, None]
    later = sum(prepared.root_best[1:], np.zeros(len(prepared.scaled)))
    shift = prepared.shift
    for a in range(1, len(roots)):
        later = later - prepared.root_best[a]
        other = kept[roots[a]]
        if len(obj) * len(other.obj) > state_limit:
            return None
        x = np.repeat(np.arange(len(obj)), len(other.obj))
        y = np.tile(np.arange(len(other.obj)), len(obj))
        cost, obj = cost[x] + other.cost[y], obj[x] + other.obj[y]
        picks = np.concatenate([picks[x], y[:, None]], axis=1)
        bound = (obj[:, None] - cost @ prepared.scaled.T + later[None, :] + shift[None, :]).min(
            axis=1
        )
        keep = bound > cut
        cost, obj, picks = cost[keep], obj[keep], picks[keep]
    return cost, obj, picks


def _decode(plan: MaxSum, kept: list[_States], start: list[tuple[int, int]]) -> np.ndarray:
    """The value index of every variable of a complete point, from its roots' states down."""
    import numpy as np

    index = np.zeros(len(plan.problem.values), dtype=np.int64)
    stack = list(start)
    while stack:
        t, i = stack.pop()
        step, states = plan.steps[t], kept[t]
        e = int(states.entry[i])
        if step.sub:
            assert step.zindex is not None
            index[step.z] = step.zindex[e]
        else:
            index[step.z] = e % step.shape[-1]
        for a, (c, _) in enumerate(step.children):
            stack.append((c, int(states.ptrs[i, a])))
    return index


__all__ = ["STATE_LIMIT", "Above", "points_above"]
