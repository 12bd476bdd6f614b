"""Measured against predicted: a width vector's latency and activation memory next to its base.

:func:`bench_widths` is what ``widthsearch bench`` runs. Latency: the candidate and the base
are timed in one interleaved run (:func:`widthsearch.hardware.timing.measure`, threads pinned,
warm-up, median of at least 20 runs each), so load on a shared machine hits both alike and their
ratio is the figure to trust. Memory: the bytes autograd saves in one training step at the batch
size (:func:`widthsearch.hardware.memory_trace.saved_bytes`, on the CPU) against the exact
posynomial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from widthsearch.errors import UnsupportedModelError, WidthSearchError
from widthsearch.hardware.memory import activation_memory
from widthsearch.hardware.timing import measure, median, prepare, spread

if TYPE_CHECKING:
    from torch import nn

    from widthsearch.hardware.latency_model import LatencyModel
    from widthsearch.hardware.timing import Device
    from widthsearch.space.width_space import WidthSpace

MIN_RUNS = 20


@dataclass(frozen=True)
class Measured:
    """One model's predicted and measured latency and training activation memory."""

    predicted_ms: float
    measured_ms: float
    spread: float
    """Interquartile range of the runs over their median."""
    memory_bytes: int | None
    """Predicted (exact posynomial) activation bytes of a training step at the batch size;
    None where the model cannot run a training step at that batch (see ``memory_note``)."""
    measured_memory_bytes: int | None
    params: int
    macs: int

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}predicted_ms": self.predicted_ms,
            f"{prefix}measured_ms": self.measured_ms,
            f"{prefix}spread": self.spread,
            f"{prefix}memory_bytes": self.memory_bytes,
            f"{prefix}measured_memory_bytes": self.measured_memory_bytes,
            f"{prefix}params": self.params,
            f"{prefix}macs": self.macs,
        }


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


def bench_widths(
    space: WidthSpace,
    widths: Sequence[int] | None,
    device: Device,
    latency: LatencyModel,
    *,
    latency_note: str = "",
    runs: int = 30,
    warmup: int = 5,
) -> BenchResult:
    """Measure ``space`` at ``widths`` (None: the base alone) against its base on ``device``."""
    import torch

    from widthsearch.hardware.memory_trace import saved_bytes

    if runs < MIN_RUNS:
        raise WidthSearchError(f"--runs must be at least {MIN_RUNS} for a median, got {runs}")
    vectors = [space.base_widths] if widths is None else [space.base_widths, space.widths(widths)]
    torch.manual_seed(0)
    models = [space.realize(w) for w in vectors]
    try:
        memory = activation_memory(space, batch_size=device.batch_size)
        example = torch.randn(device.batch_size, *space.input_size)
        saved: list[int | None] = [saved_bytes(m, example)[0] for m in models]
        memory_note = ""
    except UnsupportedModelError as exc:  # e.g. BatchNorm on a 1x1 map at batch 1
        memory, saved, memory_note = None, [None] * len(models), f"no memory figures: {exc}"
    timed = measure_latency(models, space.input_size, device, runs=runs, warmup=warmup)
    results = [
        Measured(
            predicted_ms=latency(w),
            measured_ms=t[0],
            spread=t[1],
            memory_bytes=None if memory is None else memory(w),
            measured_memory_bytes=s,
            params=space.params(w),
            macs=space.macs(w),
        )
        for w, t, s in zip(vectors, timed, saved, strict=True)
    ]
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
    prepared = [prepare(m, device) for m in models]
    times = measure(prepared, input_size, device, runs=runs, warmup=warmup)
    return [(median(t), spread(t)) for t in times]


__all__ = ["MIN_RUNS", "BenchResult", "Measured", "bench_widths", "measure_latency"]
