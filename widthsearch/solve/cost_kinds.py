"""The cost kinds widthsearch knows, registered: params, MACs, predicted latency, training
activation memory and peak inference activation memory (see :mod:`widthsearch.solve.costs`).

Each registration says how a budget on the kind is written, shown and flagged, and how its model
is built for a width space and counted on a realized model; every command takes the kind from
here. A new kind is one more :func:`~widthsearch.solve.costs.register_cost` call below and the
module that models it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from widthsearch.hardware.memory import activation_memory
from widthsearch.hardware.peak_memory import peak_bytes, peak_memory
from widthsearch.hardware.resolve import resolve_latency_model
from widthsearch.solve.costs import CostKind, CostModel, CostSettings, register_cost
from widthsearch.solve.profile_widths import solved_widths

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace


def _latency(space: WidthSpace, settings: CostSettings, built: Mapping[str, CostModel]) -> Any:
    return resolve_latency_model(
        space,
        profile=settings.profile,
        device=settings.device,
        threads=settings.threads,
        batch_size=settings.batch_size,
        solved_widths=solved_widths,
    ).model


def _memory(space: WidthSpace, settings: CostSettings, built: Mapping[str, CostModel]) -> Any:
    latency = built.get("latency")
    batch = latency.device.batch_size if latency is not None else settings.batch_size  # type: ignore[attr-defined]
    return activation_memory(space, batch_size=batch or 1)


def _memory_count(model: Any, space: WidthSpace, settings: CostSettings) -> float:
    import torch

    from widthsearch.hardware.memory_trace import saved_bytes

    example = torch.randn(settings.batch_size or 1, *space.input_size)
    return saved_bytes(model, example)[0]


register_cost(
    CostKind(
        "params",
        "params",
        "params",
        "count",
        key="params",
        column="params",
        flag="--params",
        same_flag="--same-params",
        help="params budget: ratio or count",
    )
)
register_cost(
    CostKind(
        "macs",
        "MACs",
        "MACs",
        "count",
        key="macs",
        column="MACs",
        flag="--macs",
        same_flag="--same-flops",
        help="MACs budget: ratio, or a count of MACs",
        aliases=(("--flops", 2, "FLOPs budget: ratio, or a count of FLOPs (2 per MAC)"),),
    )
)
register_cost(
    CostKind(
        "latency",
        "latency",
        "predicted latency",
        "ms",
        key="latency_ms",
        column="latency",
        flag="--latency",
        same_flag="--same-latency",
        help="predicted latency budget: ratio of the base's (0.9) or a time (12ms)",
        build=_latency,
        options=("profile", "device", "threads", "batch_size"),
        short="lat",
    )
)
register_cost(
    CostKind(
        "memory",
        "memory",
        "activation memory",
        "bytes",
        key="memory_bytes",
        column="train memory",
        flag="--memory",
        help="training activation memory budget at --batch-size: ratio or a size (300MB)",
        build=_memory,
        count=_memory_count,
        options=("batch_size",),
        short="mem",
        explain="activation bytes a training step saves for backward at batch {batch} (exact)",
    )
)


def _peak(space: WidthSpace, settings: CostSettings, built: Mapping[str, CostModel]) -> Any:
    return peak_memory(space, activation_bytes=settings.activation_bytes)


def _peak_count(model: Any, space: WidthSpace, settings: CostSettings) -> float:
    import torch

    return peak_bytes(model, torch.zeros(1, *space.input_size), settings.activation_bytes)


register_cost(
    CostKind(
        "peak_memory",
        "peak memory",
        "peak activation memory",
        "bytes",
        key="peak_memory_bytes",
        column="peak memory",
        flag="--peak-memory",
        help="peak activation memory of an inference pass at batch 1 (the SRAM of a "
        "microcontroller): ratio or a size (256KB), at --activation-bytes per element",
        build=_peak,
        count=_peak_count,
        options=("activation_bytes",),
        short="peak",
        display=("KB", 1e3),
        explain="the most activation bytes alive at once in an inference pass at batch 1 "
        "(exact; docs: concepts/hardware-costs.md)",
    )
)
