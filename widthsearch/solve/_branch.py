"""Branch and bound over a width lattice (see :mod:`widthsearch.solve.lattice`).

Depth first over the variables, most influential first (the widest range of objective terms).
A node carries every variable's remaining widths (value indices); branching fixes one.
At each node:

1. **filter**: keep the widths of each variable that fit every budget with all the others at
   their smallest remaining width (every cost grows with every width, so nothing filtered away
   could be part of a feasible point below this node); a node whose smallest point does not fit
   is dropped;
2. **cheap bound**: the sum of each variable's best remaining term; prune at the incumbent;
3. **leaf**: at most ``leaf_limit`` points left: enumerate them;
4. **relaxation bound** (log-linear objectives): the geometric program over the node's box;
   prune unless it beats the incumbent by more than the solver's accuracy; else branch on the
   next variable, its width nearest the relaxed optimum first.

Private to the lattice search.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from widthsearch.solve._lagrange import Linearized
from widthsearch.solve._lattice_model import LatticeModel, enumerate_best, greedy

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.solve._relaxation import Relaxation, Relaxed

TOLERANCE = 1e-6
"""How far (log objective) a relaxation bound must be above the incumbent to keep a node."""


@dataclass(frozen=True)
class Branched:
    """What a branch-and-bound run found."""

    idx: np.ndarray
    objective: float
    complete: bool
    """The tree was exhausted: ``idx`` is optimal (within :data:`TOLERANCE`)."""
    nodes: int
    relaxations: int
    cheap_bound: float
    """The root's cheap bound (each variable at its best fitting width)."""


def _nearest(model: LatticeModel, widths: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.array(
        [int(np.argmin(np.abs(v - w))) for v, w in zip(model.values, widths, strict=True)]
    )


def _filter(model: LatticeModel, domains: list[np.ndarray]) -> list[np.ndarray] | None:
    """Each variable's widths that fit with the others at their smallest; None if none do."""
    import numpy as np

    low = np.array([d[0] for d in domains])
    if not model.fits(low[None, :])[0]:
        return None
    js = np.concatenate([np.full(len(d) - 1, j) for j, d in enumerate(domains)]).astype(int)
    if not len(js):
        return domains
    ks = np.concatenate([d[1:] for d in domains])
    rows = np.repeat(low[None, :], len(js), axis=0)
    rows[np.arange(len(js)), js] = ks
    ok = model.fits(rows)
    out = []
    for j, d in enumerate(domains):
        out.append(np.concatenate([d[:1], ks[(js == j) & ok]]))
    return out


def branch_and_bound(
    model: LatticeModel,
    relaxation: Relaxation | None,
    root: Relaxed | None,
    *,
    deadline: float,
    leaf_limit: int,
) -> Branched:
    """The best lattice point, or the best found by ``deadline`` (``time.perf_counter``)."""
    import numpy as np

    n = model.n
    if root is not None:
        start = _nearest(model, root.widths)
    else:
        start = np.array([len(v) - 1 for v in model.values])
    best_idx = greedy(model, start)
    best = float(model.objective(best_idx[None, :])[0])
    order = sorted(range(n), key=lambda j: -(model.tables[j].max() - model.tables[j].min()))
    full = [np.arange(len(v)) for v in model.values]
    first = _filter(model, full)
    assert first is not None  # the smallest point fits (checked before)
    cheap_root = sum(float(model.tables[j][d].max()) for j, d in enumerate(first))
    linear = Linearized(model)
    if root is not None:
        u0 = np.log(root.widths)
    else:
        u0 = np.log(np.array([v[i] for v, i in zip(model.values, best_idx, strict=True)], float))
    stack: list[list[np.ndarray]] = [first]
    nodes = relaxations = 0
    complete = True
    while stack:
        if time.perf_counter() > deadline:
            complete = False
            break
        domains = stack.pop()
        nodes += 1
        filtered = _filter(model, domains)
        if filtered is None:
            continue
        cheap = sum(float(model.tables[j][d].max()) for j, d in enumerate(filtered))
        if cheap <= best + 1e-12:
            continue
        if math.prod(len(d) for d in filtered) <= leaf_limit:
            idx, obj = enumerate_best(model, filtered)
            if idx is not None and obj > best:
                best_idx, best = idx, obj
            continue
        bound, picked = linear.bound(filtered, u0)
        if bound <= best + 1e-9:
            continue
        guide = np.exp(picked)
        j = next(k for k in order if len(filtered[k]) > 1)
        values = filtered[j]
        prefer = np.argsort(np.abs(model.values[j][values] - guide[j]), kind="stable")
        for k in prefer[::-1]:  # the preferred child is popped first
            child = list(filtered)
            child[j] = values[k : k + 1]
            stack.append(child)
    return Branched(best_idx, best, complete, nodes, relaxations, max(cheap_root, best))


__all__ = ["TOLERANCE", "Branched", "branch_and_bound"]
