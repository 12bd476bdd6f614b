"""Making a latency profile: width vectors to time, timing them, fitting the latency model.

A profile times the model realized at width vectors of its own width space (the base, SynExp
solutions at random budgets, and random vectors with a scale per vector, a factor per role of
group and a little noise per group, on the multiple-of-8 grid: :func:`sample_widths`), interleaved,
median of several runs each (:mod:`widthsearch.hardware.timing`), and fits the coefficients of the
latency model (:mod:`widthsearch.hardware.latency_model`) to them. Whole models at the widths a
user deploys, not micro-benchmarks of single layers: what runs between layers (allocation, cache
misses, framework overhead) is part of what is fitted.

The SynExp solutions come from the solver, which sits above the hardware models it constrains:
its caller hands them in as ``solved_widths`` (:func:`widthsearch.solve.solved_widths`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from widthsearch.hardware.latency_model import (
    FEATURES,
    feature_values,
    fit_coefficients,
    fit_errors,
)
from widthsearch.hardware.profile import ModelFit, Profile, pooled_fit
from widthsearch.hardware.timing import Device, measure, median, spread, timing_ready
from widthsearch.space.grid import nearest, width_grid

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace

DEFAULT_SAMPLES = 24
"""Width vectors a profile times per model, the base included (fewer on a slow model)."""
_MIN_SAMPLES = 12
_MIN_RUNS = 5
QUICK_SECONDS = 45.0
"""Time a quick profile aims at (the model's realization and timing); at most about a minute."""
DEFAULT_MODELS = ("efficientnet_b0", "mobilenetv2_100", "resnet50")
"""What ``widthsearch profile`` measures when no model is named: inverted residuals with
squeeze-excite, plain inverted residuals, dense bottlenecks."""
SolvedWidths = Callable[["WidthSpace", int, int], list[tuple[int, ...]]]
"""``solved_widths(space, n, seed)``: ``n`` width vectors the solver proposes for ``space``
(:func:`widthsearch.solve.solved_widths`)."""


# ------------------------------------------------------------------------ width vectors
def _roles(space: WidthSpace) -> list[int]:
    """A role per group: groups touched by the same kinds of layers (expansions that feed a
    depthwise conv, residual streams, squeeze-excite bottlenecks, ...) share one."""
    kinds: dict[int, set[str]] = {g.id: set() for g in space.groups}
    for lay in space.layers:
        for side, groups in (("in", lay.in_groups), ("out", lay.out_groups)):
            for g in groups:
                kinds[g].add(f"{side}:{lay.kind}")
    keys: dict[frozenset[str], int] = {}
    return [keys.setdefault(frozenset(kinds[g.id]), len(keys)) for g in space.groups]


SOLVED_SHARE = 1 / 3
"""Share of a profile's width vectors that are SynExp solutions at random budgets."""


def sample_widths(
    space: WidthSpace, n: int, seed: int = 0, *, solved_widths: SolvedWidths
) -> list[tuple[int, ...]]:
    """The base widths, SynExp solutions at random budgets (:data:`SOLVED_SHARE` of ``n``, from
    ``solved_widths``) and random width vectors, ``n`` in all, on the multiple-of-8 grid.

    A random vector's free groups get multipliers ``s · r_role · e_g``: a scale per vector
    (log-uniform in 0.4-1.4), a factor per *role* of group (log-uniform in 0.4-2.2; groups
    touched by the same kinds of layers share a role, so expansions and residual streams move
    apart as PreConfig moves them) and a little per-group noise (0.75-1.33), clipped to 0.1-2:
    the range PreCrop and PreConfig cover, with uniform and uneven shapes, so that every term of
    the latency model varies on its own.

    Args:
        space: the width space to sample.
        n: how many vectors, the base included.
        seed: seeds the random vectors and ``solved_widths``.
        solved_widths: the solver's proposals, :func:`widthsearch.solve.solved_widths`
            (handed in: the solver sits above the hardware models it uses).
    """
    grid = width_grid(space, divisor=8, min_width=0.1, max_width=2.0)
    roles = _roles(space)
    rng = random.Random(seed)

    def logu(lo: float, hi: float) -> float:
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    out = [space.base_widths]
    out += solved_widths(space, int(SOLVED_SHARE * (n - 1)), seed)
    while len(out) < n:
        s = logu(0.4, 1.4)
        r = [logu(0.4, 2.2) for _ in range(max(roles) + 1)]
        widths = []
        for g, role in zip(space.groups, roles, strict=True):
            x = min(2.0, max(0.1, s * r[role] * logu(0.75, 1.33)))
            widths.append(nearest(grid[g.id], x * g.width))
        if tuple(widths) not in out:
            out.append(tuple(widths))
    return out


# ---------------------------------------------------------------------------- measuring
def time_widths(
    space: WidthSpace,
    widths: Sequence[Sequence[int]],
    device: Device,
    *,
    runs: int,
    warmup: int = 2,
    max_bytes: float = 1.5e9,
    deadline: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[float, float]]:
    """(median ms, spread) of ``space`` realized at each width vector, measured interleaved.

    Models are realized in chunks of at most ``max_bytes`` of parameters; every chunk times
    the base model too, and a chunk's medians are scaled by the base's overall median over its
    median in that chunk, so that load that changes between chunks cancels. ``deadline`` (a
    ``time.perf_counter()`` value) ends the timed rounds early (see :func:`measure`).
    """
    import torch

    chunks: list[list[int]] = [[]]
    size = 0.0
    for i, w in enumerate(widths):
        b = 4.0 * space.params(w)
        if chunks[-1] and size + b > max_bytes:
            chunks.append([])
            size = 0.0
        chunks[-1].append(i)
        size += b
    results: list[tuple[float, float]] = [(0.0, 0.0)] * len(widths)
    base_medians = []
    for k, chunk in enumerate(chunks):
        torch.manual_seed(0)
        models = [timing_ready(space.realize(space.base_widths), device)]
        models += [timing_ready(space.realize(widths[i]), device) for i in chunk]
        if progress:
            progress(f"timing {len(chunk)} models (chunk {k + 1}/{len(chunks)})")
        chunk_deadline = None
        if deadline is not None:  # share what is left among the chunks still to time
            chunk_deadline = time.perf_counter() + (deadline - time.perf_counter()) / (
                len(chunks) - k
            )
        times = measure(
            models,
            space.input_size,
            device,
            runs=runs,
            warmup=warmup,
            seed=k,
            deadline=chunk_deadline,
        )
        base = median(times[0])
        base_medians.append(base)
        for i, t in zip(chunk, times[1:], strict=True):
            results[i] = (median(t) / base, spread(t))
        del models
    overall = median(base_medians)
    return [(r * overall, s) for r, s in results]


def fit_model(
    space: WidthSpace,
    device: Device,
    *,
    solved_widths: SolvedWidths,
    samples: int = DEFAULT_SAMPLES,
    seconds: float = QUICK_SECONDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ModelFit:
    """Time ``space`` at ``samples`` width vectors within about ``seconds`` and fit it.

    One quick timing of the base sets how many vectors fit in ``seconds`` (at least 12, fewer
    than asked for on a slow model); the timed rounds (5 to 25 runs per vector) then stop at
    the deadline, after at least 3. The width vectors are :func:`sample_widths`'s, with the
    solver's proposals from ``solved_widths`` (:func:`widthsearch.solve.solved_widths`).
    """
    import torch

    start = time.perf_counter()
    deadline = start + seconds
    base = timing_ready(space.realize(), device)
    realize_s = time.perf_counter() - start
    probe = median(measure([base], space.input_size, device, runs=2, warmup=1)[0]) / 1e3
    del base
    torch.manual_seed(0)
    per_model = 1.5 * probe  # wider models run slower than the base
    budget = deadline - time.perf_counter()
    fit_samples = int(budget / (realize_s * 1.3 + (_MIN_RUNS + 1) * per_model))
    samples = min(samples, max(_MIN_SAMPLES, fit_samples))
    budget -= samples * (realize_s * 1.3 + per_model)  # realization and warm-up
    runs = int(max(_MIN_RUNS, min(25, budget / (samples * per_model))))
    widths = sample_widths(space, samples, seed, solved_widths=solved_widths)
    rows = [feature_values(space, w) for w in widths]
    timed = time_widths(
        space, widths, device, runs=runs, warmup=1, deadline=deadline, progress=progress
    )
    ms = [t for t, _ in timed]
    coef = fit_coefficients(rows, ms)
    return ModelFit(
        model=space.model,
        input_size=tuple(space.input_size),
        timm_kwargs=dict(space.timm_kwargs),
        fingerprint=space.fingerprint,
        coefficients=dict(zip(FEATURES, coef, strict=True)),
        errors=fit_errors(rows, ms),
        samples=tuple(
            {"widths": list(w), "ms": t, "spread": s, "features": r}
            for w, (t, s), r in zip(widths, timed, rows, strict=True)
        ),
        seconds=time.perf_counter() - start,
    )


def make_profile(
    spaces: Sequence[WidthSpace],
    device: Device,
    *,
    solved_widths: SolvedWidths,
    samples: int = DEFAULT_SAMPLES,
    seconds: float = QUICK_SECONDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Measure ``device`` on every width space and fit a profile (about ``seconds`` each).

    ``solved_widths`` proposes the solver's width vectors (:func:`fit_model`): pass
    :func:`widthsearch.solve.solved_widths`.
    """
    fits = []
    for space in spaces:
        if progress:
            progress(f"profiling {space.model} on {device.describe()}")
        fits.append(
            fit_model(
                space,
                device,
                solved_widths=solved_widths,
                samples=samples,
                seconds=seconds,
                seed=seed,
                progress=progress,
            )
        )
    pooled, errors = pooled_fit(fits)
    return Profile(
        device=device,
        fits=tuple(fits),
        pooled=pooled,
        pooled_errors=errors,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_SAMPLES",
    "QUICK_SECONDS",
    "SOLVED_SHARE",
    "SolvedWidths",
    "fit_model",
    "make_profile",
    "sample_widths",
    "time_widths",
]
