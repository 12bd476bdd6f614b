"""Measured against predicted: a width vector's latency and counted costs next to its base.

:func:`bench_widths` is what ``widthsearch bench`` runs. Latency: the candidate and the base
are timed in one interleaved run (:func:`widthsearch.hardware.timing.measure`, threads pinned,
warm-up, median of at least 20 runs each), so load on a shared machine hits both alike and their
ratio is the figure to trust. Counted costs (:class:`Counted`: the activation memory a training
step saves, the peak activation memory of an inference pass, ...): each counted on the realized
models against its model's exact prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from widthsearch.errors import UnsupportedModelError, WidthSearchError
from widthsearch.hardware.memory import activation_memory
from widthsearch.hardware.timing import measure, median, spread, timing_ready

if TYPE_CHECKING:
    from torch import nn

    from widthsearch.hardware.latency_model import LatencyModel
    from widthsearch.hardware.timing import Device
    from widthsearch.space.width_space import WidthSpace

MIN_RUNS = 20


@dataclass(frozen=True)
class Counted:
    """A cost counted on the realized models next to its model's prediction: the cost kind's
    value ``key`` (``memory_bytes``), its model of the width space (raising
    :class:`~widthsearch.errors.UnsupportedModelError` where it has none), and its count on a
    realized model."""

    key: str
    model: Callable[[], Callable[[Sequence[int]], float]]
    count: Callable[[nn.Module], float]


@dataclass(frozen=True)
class Measured:
    """One model's predicted and measured latency, and its counted costs."""

    predicted_ms: float
    measured_ms: float
    spread: float
    """Interquartile range of the runs over their median."""
    params: int
    macs: int
    counted: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """Cost key -> (predicted, counted) on this model; None where its model could not be built
    (see the result's notes)."""

    @property
    def memory_bytes(self) -> float | None:
        return self.counted.get("memory_bytes", (None, None))[0]

    @property
    def measured_memory_bytes(self) -> float | None:
        return self.counted.get("memory_bytes", (None, None))[1]

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            f"{prefix}predicted_ms": self.predicted_ms,
            f"{prefix}measured_ms": self.measured_ms,
            f"{prefix}spread": self.spread,
        }
        for key, (predicted, counted) in self.counted.items():
            out[f"{prefix}{key}"] = predicted
            out[f"{prefix}measured_{key}"] = counted
        return out | {f"{prefix}params": self.params, f"{prefix}macs": self.macs}


@dataclass(frozen=True)
class BenchResult:
    model: str
    input_size: tuple[int, ...]
    device: Device
    runs: int
    candidate: Measured | None
    """None when the model is the base itself."""
    base: Measured
    latency_note: str
    memory_note: str = ""
    """Why a counted cost has no figures (a model that cannot run a training step at the
    batch, say)."""

    def to_dict(self) -> dict[str, Any]:
        main = self.candidate or self.base
        out: dict[str, Any] = {
            "model": self.model,
            "input_size": list(self.input_size),
            "device": self.device.to_dict(),
            "runs": self.runs,
            "is_base": self.candidate is None,
            **main.to_dict(),
            **self.base.to_dict("base_"),
            "latency_model": self.latency_note,
            "memory_note": self.memory_note,
        }
        out["measured_ratio"] = main.measured_ms / self.base.measured_ms
        out["predicted_ratio"] = main.predicted_ms / self.base.predicted_ms
        return out


def training_memory(space: WidthSpace, batch_size: int) -> Counted:
    """The activation memory a training step saves, counted (:func:`~widthsearch.hardware.
    memory_trace.saved_bytes`) against :func:`~widthsearch.hardware.memory.activation_memory`."""
    import torch

    from widthsearch.hardware.memory_trace import saved_bytes

    example = torch.randn(batch_size, *space.input_size)
    return Counted(
        "memory_bytes",
        lambda: activation_memory(space, batch_size=batch_size),
        lambda m: saved_bytes(m, example)[0],
    )


def bench_widths(
    space: WidthSpace,
    widths: Sequence[int] | None,
    device: Device,
    latency: LatencyModel,
    *,
    latency_note: str = "",
    runs: int = 30,
    warmup: int = 5,
    counted: Sequence[Counted] | None = None,
) -> BenchResult:
    """Measure ``space`` at ``widths`` (None: the base alone) against its base on ``device``;
    ``counted``: the costs counted on both (default: the training activation memory at the
    device's batch)."""
    import torch

    if runs < MIN_RUNS:
        raise WidthSearchError(f"--runs must be at least {MIN_RUNS} for a median, got {runs}")
    vectors = [space.base_widths] if widths is None else [space.base_widths, space.widths(widths)]
    torch.manual_seed(0)
    models = [space.realize(w) for w in vectors]
    counts: list[dict[str, tuple[float | None, float | None]]] = [{} for _ in models]
    notes = []
    if counted is None:
        counted = [training_memory(space, device.batch_size)]
    for cost in counted:
        try:
            predict = cost.model()
            for w, m, out in zip(vectors, models, counts, strict=True):
                out[cost.key] = (predict(w), cost.count(m))
        except UnsupportedModelError as exc:  # e.g. BatchNorm on a 1x1 map at batch 1
            notes.append(f"no {cost.key} figures: {exc}")
            for out in counts:
                out[cost.key] = (None, None)
    timed = measure_latency(models, space.input_size, device, runs=runs, warmup=warmup)
    results = [
        Measured(
            predicted_ms=latency(w),
            measured_ms=t[0],
            spread=t[1],
            params=space.params(w),
            macs=space.macs(w),
            counted=c,
        )
        for w, t, c in zip(vectors, timed, counts, strict=True)
    ]
    memory_note = "; ".join(notes)
    return BenchResult(
        model=space.model,
        input_size=tuple(space.input_size),
        device=device,
        runs=runs,
        candidate=None if widths is None else results[1],
        base=results[0],
        latency_note=latency_note,
        memory_note=memory_note,
    )


def measure_latency(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    device: Device,
    *,
    runs: int = 30,
    warmup: int = 5,
) -> list[tuple[float, float]]:
    """Median milliseconds and spread (interquartile range over the median) of each model's
    forward pass at ``device``'s batch size, all timed in one interleaved run so that load on a
    shared machine hits every model alike: their ratios are the figures to trust.

    This is what ``verify`` reports next to MACs for the models it trained (as trained: stem,
    classes and input size), so a reader sees what equal MACs cost in time.
    """

    if runs < MIN_RUNS:
        raise WidthSearchError(f"latency runs must be at least {MIN_RUNS} for a median, got {runs}")
    prepared = [timing_ready(m, device) for m in models]
    times = measure(prepared, input_size, device, runs=runs, warmup=warmup)
    return [(median(t), spread(t)) for t in times]


__all__ = [
    "MIN_RUNS",
    "BenchResult",
    "Counted",
    "Measured",
    "bench_widths",
    "measure_latency",
    "training_memory",
]
