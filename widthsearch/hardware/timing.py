"""Measuring inference latency: the device it ran on, pinned threads, warm-up, interleaving.

Latency here is the wall time of one inference forward pass (``torch.inference_mode``) of a
batch of ``batch_size`` images at the model's input size, in milliseconds. On CUDA every run is
timed with CUDA events after a synchronize, so the figure is GPU time, not the time to queue.

Timings on a shared machine drift as load comes and goes. :func:`measure` therefore runs the
models *interleaved*: each round times every model once, in a fresh random order, so that a
slow spell hits all of them alike, and it reports the median over rounds. Comparisons of two
models (a candidate against its base) should come from one call.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from widthsearch.errors import DeviceError

if TYPE_CHECKING:
    import torch
    from torch import nn

DTYPES = ("float32", "bfloat16", "float16")
MIN_ROUNDS = 3
"""Timed rounds :func:`measure` always runs, deadline or not."""
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Device:
    """What a latency was measured on; two equal devices give comparable figures."""

    type: str
    """cpu or cuda."""
    name: str
    """The processor's or GPU's model name."""
    torch: str
    """torch version."""
    threads: int
    """CPU threads torch uses (torch.set_num_threads): pinned while measuring."""
    batch_size: int
    dtype: str

    def describe(self) -> str:
        threads = f", {self.threads} thread(s)" if self.type == "cpu" else ""
        return (
            f"{self.type} ({self.name}){threads}, torch {self.torch}, batch {self.batch_size}, "
            f"{self.dtype}"
        )

    def mismatch(self, other: Device) -> str | None:
        """Why latencies measured on ``other`` do not hold on this device; None if they do."""
        fields = ["type", "name", "torch", "batch_size", "dtype"]
        if self.type == "cpu":
            fields.append("threads")
        diff = [f for f in fields if getattr(self, f) != getattr(other, f)]
        if not diff:
            return None
        return ", ".join(f"{f} {getattr(other, f)} (here {getattr(self, f)})" for f in diff)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Device:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def current_device(
    device: str = "cpu",
    *,
    threads: int | None = None,
    batch_size: int = 1,
    dtype: str = "float32",
) -> Device:
    """The device in use with these settings.

    Raises:
        DeviceError: unknown device or dtype, no CUDA device, bad threads or batch size.
    """
    import torch

    if device not in DEVICES:
        raise DeviceError(f"unknown device '{device}'; choose cpu or cuda")
    if dtype not in DTYPES:
        raise DeviceError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
    if batch_size < 1:
        raise DeviceError(f"batch size must be at least 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise DeviceError(f"threads must be at least 1, got {threads}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("no CUDA device is available here; use --device cpu")
        name = torch.cuda.get_device_name()
    else:
        name = _cpu_name()
    return Device(
        type=device,
        name=name,
        torch=torch.__version__,
        threads=threads or torch.get_num_threads(),
        batch_size=batch_size,
        dtype=dtype,
    )


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the duration, then the previous count again."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Load:
    """CPU cores that processes other than this one kept busy, on average, while a block ran
    (:func:`others_busy`); ``cores`` is None where the machine does not say (not Linux)."""

    cores: float | None = None


def describe_load(cores: float | None) -> str:
    """`` (other processes: 0.03 CPU cores busy)``, to follow a timing device's description;
    empty where the load is not known."""
    return "" if cores is None else f" (other processes: {cores:.2f} CPU cores busy)"


def _busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux ``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user)
    ticks = [int(v) for v in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def others_busy() -> Iterator[Load]:
    """Measure the CPU cores other processes keep busy while the block runs.

    A timing's spread does not reveal steady load: another training run on the next core
    slows every model about alike, timings stay tight, and their ratios still drift (memory
    bandwidth, clocks). So whoever keeps timings says how busy the machine was: the machine's
    busy CPU time over the block, less this process's own, over the block's wall time."""
    load = Load()
    start_busy, start_own, start = _busy_seconds(), os.times(), time.perf_counter()
    try:
        yield load
    finally:
        end_busy, end_own, wall = _busy_seconds(), os.times(), time.perf_counter() - start
        if start_busy is not None and end_busy is not None and wall > 0:
            own = (end_own.user - start_own.user) + (end_own.system - start_own.system)
            # clock ticks (1/100 s) can round a reading past the machine's cores: clamp it
            cores = float(os.cpu_count() or 1)
            load.cores = min(cores, max(0.0, (end_busy - start_busy - own) / wall))


def timing_ready(model: nn.Module, device: Device) -> nn.Module:
    """``model`` in eval mode on the device, in the device's dtype."""
    import torch

    return model.eval().to(device=device.type, dtype=getattr(torch, device.dtype))


def example_batch(input_size: Sequence[int], device: Device) -> torch.Tensor:
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(device.batch_size, *input_size, generator=gen)
    return x.to(device=device.type, dtype=getattr(torch, device.dtype))


def _timer(device: Device) -> Callable[[nn.Module, Any], float]:
    import torch

    if device.type == "cuda":

        def run_cuda(model: nn.Module, x: Any) -> float:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            model(x)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))

        return run_cuda

    def run_cpu(model: nn.Module, x: Any) -> float:
        start = time.perf_counter()
        model(x)
        return (time.perf_counter() - start) * 1e3

    return run_cpu


def measure(
    models: Sequence[nn.Module],
    input_size: Sequence[int],
    device: Device,
    *,
    runs: int = 20,
    warmup: int = 3,
    seed: int = 0,
    deadline: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[float]]:
    """Milliseconds of each of ``runs`` timed forward passes per model, interleaved.

    Every model first runs ``warmup`` times (allocator, oneDNN/cuDNN kernel choice); then each
    round times every model once in a random order. Models must already be :func:`timing_ready`.
    Past ``deadline`` (a ``time.perf_counter()`` value) no new round starts once
    :data:`MIN_ROUNDS` are done. ``progress(done, total)`` is called after each round.
    """
    import torch

    if runs < 1 or warmup < 0:
        raise DeviceError(f"runs must be at least 1 and warm-up at least 0, got {runs}, {warmup}")
    x = example_batch(input_size, device)
    timer = _timer(device)
    rng = random.Random(seed)
    times: list[list[float]] = [[] for _ in models]
    order = list(range(len(models)))
    with pinned_threads(device.threads), torch.inference_mode():
        for model in models:
            for _ in range(warmup):
                timer(model, x)
        for r in range(runs):
            rng.shuffle(order)
            for i in order:
                times[i].append(timer(models[i], x))
            if progress is not None:
                progress(r + 1, runs)
            if deadline is not None and r + 1 >= MIN_ROUNDS and time.perf_counter() > deadline:
                break
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """Interquartile range over the median: how noisy a set of timings was."""
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / statistics.median(values)


__all__ = [
    "DEVICES",
    "DTYPES",
    "Device",
    "DeviceError",
    "Load",
    "current_device",
    "describe_load",
    "example_batch",
    "measure",
    "median",
    "others_busy",
    "pinned_threads",
    "timing_ready",
    "spread",
]
