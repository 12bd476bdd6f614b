"""A study's hardware models: predicted latency and training activation memory.

A study with a latency objective (or a latency range) builds a latency model of its device;
one with a memory range builds the activation-memory model at the latency's batch size. Both
join the SynExp program as cost posynomials (:attr:`HardwareModels.costs`). The study keeps the
latency model's terms (:meth:`HardwareModels.attrs`), so that fronts, reports and verification
read predicted latency back (:func:`stored_latency`) without profiling again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from widthsearch.hardware import (
    ActivationMemory,
    LatencyModel,
    activation_memory,
    resolve_latency_model,
)
from widthsearch.search.attrs import StudyAttr
from widthsearch.search.settings import SearchConfig
from widthsearch.solve import solved_widths
from widthsearch.space import Posynomial, WidthSpace


@dataclass(frozen=True)
class HardwareModels:
    """A study's latency and activation-memory models (None where it needs none)."""

    latency: LatencyModel | None = None
    memory: ActivationMemory | None = None
    note: str = ""

    @property
    def costs(self) -> dict[str, Posynomial]:
        out = {}
        if self.latency is not None:
            out["latency"] = self.latency.cost
        if self.memory is not None:
            out["memory"] = self.memory.cost
        return out

    def attrs(self, space: WidthSpace) -> dict[str, Any]:
        """Study attributes: base figures and the latency model, so that fronts and reports
        show latency without profiling again."""
        out: dict[str, Any] = {}
        if self.latency is not None:
            out[StudyAttr.BASE_LATENCY_MS] = self.latency(space.base_widths)
            out[StudyAttr.LATENCY_MODEL] = {
                "note": self.note,
                "device": self.latency.device.to_dict(),
                "terms": [[c, [list(p) for p in m]] for m, c in self.latency.cost.terms],
            }
        if self.memory is not None:
            out[StudyAttr.BASE_MEMORY_BYTES] = self.memory(space.base_widths)
            out[StudyAttr.MEMORY_BATCH_SIZE] = self.memory.batch_size
        return out


def hardware_models(
    config: SearchConfig, space: WidthSpace, progress: Callable[[str], None] | None = None
) -> HardwareModels:
    """The latency model (``config.hardware``'s profile, or a cached quick profile) when the
    study has a latency objective, and the memory model when it has a memory range."""
    hw = config.hardware
    latency = memory = None
    note = ""
    batch = hw.batch_size
    if "latency_ms" in config.axes:
        resolved = resolve_latency_model(
            space,
            profile=hw.profile,
            device=hw.device,
            threads=hw.threads,
            batch_size=hw.batch_size,
            solved_widths=solved_widths,
            progress=progress,
        )
        latency, note = resolved.model, resolved.note
        batch = latency.device.batch_size
    if config.ranges.memory is not None:
        memory = activation_memory(space, batch_size=batch or 1)
    return HardwareModels(latency, memory, note)


def stored_latency(attrs: dict[str, Any]) -> Posynomial | None:
    """The latency posynomial a study stored (see :meth:`HardwareModels.attrs`), or None."""
    model = attrs.get(StudyAttr.LATENCY_MODEL)
    if not model:
        return None
    return Posynomial(tuple((tuple(tuple(p) for p in m), c) for c, m in model["terms"]))


__all__ = ["HardwareModels", "hardware_models", "stored_latency"]
