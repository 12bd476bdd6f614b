"""What widthsearch is compared with on the same budgets.

- **uniform**: one width multiplier on every free group, as timm's ``channel_multiplier`` does,
  the largest that keeps every budget after rounding to the same grid.
- **random**: a random shape at the same cost: each free group's width multiplied by its own
  log-uniform draw from ``[min_width, max_width]``, then the whole vector scaled by the largest
  common factor that keeps every budget after rounding. It answers whether the SynExp optimum
  beats chance at equal cost.
- **synflow**: the layer densities that SynFlow's iterative unstructured pruning (100 rounds,
  exponential schedule) reaches at the parameter budget. It prunes single weights, so it is a
  reference for how SynExp rates unstructured pruning, not a buildable channel configuration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from widthsearch.solve.rounding import nearest
from widthsearch.solve.synexp import (
    WEIGHT_KINDS,
    log_synexp,
    log_synexp_of_densities,
    synflow_prune,
)

if TYPE_CHECKING:
    from widthsearch.solve.program import Budgets
    from widthsearch.space.choices import WidthLattice
    from widthsearch.space.cost import Cost
    from widthsearch.space.width_space import WidthSpace

SYNFLOW_ROUNDS = 100
SYNFLOW_MAX_SIDE = 64
"""SynFlow runs at the input size capped at 64x64: its 100 float64 passes stay affordable, and an
all-ones input makes the scores of a conv depend on image size mostly through a common factor."""


@dataclass(frozen=True)
class Baseline:
    """One comparison point: its log SynExp against the base model, or why there is none."""

    name: str
    description: str
    log_synexp: float | None
    params: int | None = None
    macs: int | None = None
    widths: tuple[int, ...] | None = None
    note: str = ""
    seconds: float = 0.0
    densities: dict[str, float] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        log_s = self.log_synexp
        return {
            "name": self.name,
            "description": self.description,
            "log_synexp": None if log_s is None or math.isinf(log_s) else log_s,
            "collapsed": log_s is not None and math.isinf(log_s),
            "params": self.params,
            "macs": self.macs,
            "widths": None if self.widths is None else list(self.widths),
            "note": self.note,
            "seconds": self.seconds,
        }


def uniform(
    space: WidthSpace,
    budgets: Budgets,
    grid: Sequence[Sequence[int]],
    *,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost] | None = None,
) -> Baseline:
    """The largest uniform multiplier whose rounded widths hold every budget (latency and
    memory budgets on ``costs``, a program's cost posynomials)."""
    start = time.perf_counter()
    scaled = _largest_fitting(
        space, budgets, grid, [1.0] * len(space.groups), min_width, max_width, costs
    )
    if scaled is None:
        return Baseline(
            "uniform",
            "uniform multiplier",
            None,
            note=f"no uniform multiplier >= {min_width:g} fits the budget",
            seconds=time.perf_counter() - start,
        )
    alpha, widths = scaled
    return _at(
        space, "uniform", f"uniform multiplier {_multiplier(space, alpha, widths)}", widths, start
    )


def _multiplier(space: WidthSpace, alpha: float, widths: Sequence[int]) -> str:
    """The uniform multiplier as shown: ``1x`` when the rounded widths are the base's (the
    bisection's ``alpha`` may be a little above 1 and still round to them), else ``alpha`` to
    three digits, never shown as ``1.000x`` for widths that differ from the base."""
    if tuple(widths) == tuple(space.base_widths):
        return "1x"
    text = f"{alpha:.3f}x"
    return f"{alpha:.4f}x" if text == "1.000x" else text


def random_shape(
    space: WidthSpace, seed: int, *, min_width: float, max_width: float
) -> list[float]:
    """One multiplier per group, log-uniform in ``[min_width, max_width]`` (1 for fixed groups),
    from ``random.Random(seed)``: the same seed gives the same shape on every machine."""
    import random

    rng = random.Random(seed)
    lo, hi = math.log(min_width), math.log(max_width)
    return [1.0 if g.fixed else math.exp(rng.uniform(lo, hi)) for g in space.groups]


def random_widths(
    space: WidthSpace,
    budgets: Budgets,
    grid: Sequence[Sequence[int]],
    seed: int,
    *,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost] | None = None,
) -> Baseline:
    """A random-shape control: :func:`random_shape` scaled by the largest common factor whose
    rounded widths hold every budget. Widths stay on ``grid`` (whose ends are the bounds), so a
    scaled multiplier beyond a bound is clipped to it."""
    start = time.perf_counter()
    shape = random_shape(space, seed, min_width=min_width, max_width=max_width)
    # the common factor may carry the smallest draw down to min_width / max_width
    scaled = _largest_fitting(
        space, budgets, grid, shape, min_width / max_width, max_width / min_width, costs
    )
    name, desc = "random", f"random shape {seed}"
    if scaled is None:
        return Baseline(
            name,
            desc,
            None,
            note="no scale of this shape fits the budget",
            seconds=time.perf_counter() - start,
        )
    return _at(space, name, desc, scaled[1], start)


def _at(space: WidthSpace, name: str, desc: str, widths: tuple[int, ...], start: float) -> Baseline:
    """The baseline at ``widths``: its log SynExp and exact costs, timed from ``start``."""
    return Baseline(
        name,
        desc,
        log_synexp(space, widths),
        params=space.params(widths),
        macs=space.macs(widths),
        widths=widths,
        seconds=time.perf_counter() - start,
    )


def _largest_fitting(
    space: WidthSpace,
    budgets: Budgets,
    grid: Sequence[Sequence[int]],
    shape: Sequence[float],
    lo: float,
    hi: float,
    costs: Mapping[str, Cost] | None,
) -> tuple[float, tuple[int, ...]] | None:
    """The largest ``alpha`` in ``[lo, hi]`` (bisection) whose widths ``alpha * shape * base``,
    rounded on ``grid``, hold every budget, and those widths; None if ``lo`` does not fit."""
    polys = {"params": space.param_cost, "macs": space.mac_cost, **(costs or {})}
    limits = {n: b for n, b in budgets.limits().items() if b is not None and n in polys}

    def widths_at(alpha: float) -> tuple[int, ...]:
        return tuple(
            nearest(grid[g.id], alpha * m * g.width)
            for g, m in zip(space.groups, shape, strict=True)
        )

    def fits(widths: Sequence[int]) -> bool:
        return all(polys[n](widths) <= b for n, b in limits.items())

    if not fits(widths_at(lo)):
        return None
    if fits(widths_at(hi)):
        lo = hi
    for _ in range(50):  # rounded costs are non-decreasing in alpha
        if hi - lo < 1e-6:
            break
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(widths_at(mid)) else (lo, mid)
    return lo, widths_at(lo)


def _lattice_point(
    space: WidthSpace, lattice: WidthLattice, shape: Sequence[float], alpha: float
) -> tuple[int, ...]:
    """Each variable at its grid width nearest ``alpha * shape_c * base`` (its first group's)."""
    widths = list(space.base_widths)
    for c, values, m in zip(lattice.classes, lattice.values, shape, strict=True):
        w = nearest(values, alpha * m * space.groups[c[0]].width)
        for g in c:
            widths[g] = w
    return tuple(widths)


def _largest_on_lattice(
    space: WidthSpace,
    budgets: Budgets,
    lattice: WidthLattice,
    shape: Sequence[float],
    costs: Mapping[str, Cost] | None,
) -> tuple[float, tuple[int, ...]] | None:
    """The largest ``alpha`` among the points where some variable changes width (every grid
    width over ``shape * base``) whose lattice point fits every budget, and that point."""
    polys = {"params": space.param_cost, "macs": space.mac_cost, **(costs or {})}
    limits = {n: b for n, b in budgets.limits().items() if b is not None and n in polys}
    alphas = sorted(
        {
            w / (m * space.groups[c[0]].width)
            for c, values, m in zip(lattice.classes, lattice.values, shape, strict=True)
            for w in values
        },
        reverse=True,
    )
    for alpha in alphas:  # costs grow with alpha: the first that fits is the largest
        widths = _lattice_point(space, lattice, shape, alpha)
        if all(polys[n](widths) <= b for n, b in limits.items()):
            return alpha, widths
    return None


def uniform_lattice(
    space: WidthSpace,
    budgets: Budgets,
    lattice: WidthLattice,
    *,
    costs: Mapping[str, Cost] | None = None,
) -> Baseline:
    """The uniform control on a grid: the largest point of equal multipliers (every variable
    at its grid width nearest ``m * base``; on a multiplier grid exactly ``round(m * base)``)
    that holds every budget. Named "uniform multiplier" only where every free group has the one
    multiplier; on an absolute grid or with ties of different base widths it is the "grid
    point nearest a uniform" one."""
    start = time.perf_counter()
    found = _largest_on_lattice(space, budgets, lattice, [1.0] * len(lattice.classes), costs)
    if found is None:
        return Baseline(
            "uniform",
            "uniform multiplier",
            None,
            note="no uniform multiplier on the grid fits the budget",
            seconds=time.perf_counter() - start,
        )
    alpha, widths = found
    ratios = {w / g.width for g, w in zip(space.groups, widths, strict=True) if not g.fixed}
    if max(ratios) - min(ratios) < 1e-9:
        name = f"uniform multiplier {_multiplier(space, min(ratios), widths)}"
    else:
        name = f"grid point nearest uniform {alpha:.3f}x ({min(ratios):.2f}x-{max(ratios):.2f}x)"
    return _at(space, "uniform", name, widths, start)


def random_lattice(
    space: WidthSpace,
    budgets: Budgets,
    lattice: WidthLattice,
    seed: int,
    *,
    min_width: float,
    max_width: float,
    costs: Mapping[str, Cost] | None = None,
) -> Baseline:
    """A random-shape control on a grid: one log-uniform multiplier in ``[min_width,
    max_width]`` per variable (``random.Random(seed)``), scaled by the largest factor whose
    lattice point holds every budget."""
    import random

    start = time.perf_counter()
    rng = random.Random(seed)
    lo, hi = math.log(min_width), math.log(max_width)
    shape = [math.exp(rng.uniform(lo, hi)) for _ in lattice.classes]
    found = _largest_on_lattice(space, budgets, lattice, shape, costs)
    if found is None:
        return Baseline(
            "random",
            f"random shape {seed}",
            None,
            note="no scale of this shape fits the budget",
            seconds=time.perf_counter() - start,
        )
    return _at(space, "random", f"random shape {seed}", found[1], start)


def synflow(
    space: WidthSpace,
    budgets: Budgets,
    *,
    rounds: int = SYNFLOW_ROUNDS,
    progress: Callable[[int, int], None] | None = None,
) -> Baseline:
    """SynFlow's layer densities at the parameter budget (unstructured, weights of conv/linear)."""
    start = time.perf_counter()
    name, desc = "synflow", f"SynFlow, {rounds} rounds, unstructured"
    if budgets.params is None:
        return Baseline(name, desc, None, note="no parameter budget to prune to")
    layers = [lay for lay in space.layers if lay.kind in WEIGHT_KINDS]
    weights = [f"{lay.name}.{dict(lay.param_attrs)['weight']}" for lay in layers]
    model = space.realize()
    sizes = dict(model.named_parameters())
    prunable = sum(sizes[w].numel() for w in weights)
    fixed = space.params() - prunable
    density = (budgets.params - fixed) / prunable
    if density >= 1:
        return Baseline(name, desc, None, note="the parameter budget is not below the base model")
    if density <= 0:
        return Baseline(name, desc, None, note="the budget is below the unprunable parameters")
    c, h, w = space.input_size
    size = (c, min(h, SYNFLOW_MAX_SIDE), min(w, SYNFLOW_MAX_SIDE))
    masks = synflow_prune(model, size, weights, density, rounds=rounds, progress=progress)
    dens = {
        lay.name: masks[wn].float().mean().item() for lay, wn in zip(layers, weights, strict=True)
    }
    kept = sum(int(m.sum()) for m in masks.values())
    collapsed = [n for n, p in dens.items() if p == 0]
    note = f"input {size[1]}x{size[2]}"
    if collapsed:
        rest = log_synexp_of_densities({n: p for n, p in dens.items() if p > 0})
        note += (
            f"; prunes {len(collapsed)} layers away entirely (layer collapse, e.g. "
            f"{collapsed[0]}); the other {len(dens) - len(collapsed)} layers: {rest:+.2f}"
        )
    return Baseline(
        name,
        desc,
        log_synexp_of_densities(dens),
        params=fixed + kept,
        note=note,
        seconds=time.perf_counter() - start,
        densities=dens,
    )


__all__ = [
    "SYNFLOW_MAX_SIDE",
    "SYNFLOW_ROUNDS",
    "Baseline",
    "random_lattice",
    "random_shape",
    "random_widths",
    "synflow",
    "uniform",
    "uniform_lattice",
]
