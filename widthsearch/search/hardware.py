"""A study's cost models beyond params and MACs: predicted latency, activation memory, ...

A study with a latency axis (or a latency range) builds a latency model of its device; one
with a budget range on another modelled cost kind (:data:`widthsearch.solve.costs.COST_KINDS`)
builds that kind's model. They join the one solve as cost posynomials
(:attr:`HardwareModels.costs`). The study keeps what fronts, reports and verification need to
read the figures back without profiling again (:meth:`HardwareModels.attrs`,
:func:`stored_models`): every kind's base value, the latency model's terms, and the settings
the other models are rebuilt from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, cast

from widthsearch.hardware import ActivationMemory, LatencyModel, resolve_latency_model
from widthsearch.search.attrs import StudyAttr
from widthsearch.search.settings import SearchConfig
from widthsearch.solve import solved_widths
from widthsearch.solve.costs import COST_KINDS, CostModel, CostSettings, cost_models, get_cost
from widthsearch.space import Posynomial, WidthSpace
from widthsearch.space.cost import Cost


@dataclass(frozen=True)
class HardwareModels:
    """A study's cost models by cost kind (none where it needs none)."""

    models: Mapping[str, CostModel] = field(default_factory=dict)
    note: str = ""
    """Where the latency model came from."""
    settings: CostSettings = CostSettings()

    @property
    def latency(self) -> LatencyModel | None:
        return cast("LatencyModel | None", self.models.get("latency"))

    @property
    def memory(self) -> ActivationMemory | None:
        return cast("ActivationMemory | None", self.models.get("memory"))

    @property
    def costs(self) -> dict[str, Cost]:
        return {n: m.cost for n, m in self.models.items()}

    def attrs(self, space: WidthSpace) -> dict[str, Any]:
        """Study attributes: every model's base value, the latency model itself, and the
        settings the others are rebuilt from, so that fronts and reports show the figures
        without profiling again."""
        out: dict[str, Any] = {}
        for name, model in self.models.items():
            out[get_cost(name).base_key] = model(space.base_widths)
        if self.latency is not None:
            out[StudyAttr.LATENCY_MODEL] = {
                "note": self.note,
                "device": self.latency.device.to_dict(),
                "terms": [[c, [list(p) for p in m]] for m, c in self.latency.cost.terms],
            }
        if self.memory is not None:
            out[StudyAttr.MEMORY_BATCH_SIZE] = self.memory.batch_size
        if self.models:
            out[StudyAttr.COST_SETTINGS] = asdict(self.settings)
        return out


def hardware_models(
    config: SearchConfig, space: WidthSpace, progress: Callable[[str], None] | None = None
) -> HardwareModels:
    """The models of the cost kinds the study needs (:attr:`SearchConfig.modelled`): the
    latency model from ``config.hardware``'s profile or a cached quick profile (said on
    ``progress``), and the others built for ``space``."""
    hw = config.hardware
    wanted = config.modelled
    built: dict[str, CostModel] = {}
    note = ""
    if "latency" in wanted:
        resolved = resolve_latency_model(
            space,
            profile=hw.profile,
            device=hw.device,
            threads=hw.threads,
            batch_size=hw.batch_size,
            solved_widths=solved_widths,
            progress=progress,
        )
        built["latency"], note = resolved.model, resolved.note
    return HardwareModels(cost_models(space, wanted, hw, built), note, hw)


def stored_models(attrs: Mapping[str, Any], space: WidthSpace) -> dict[str, CostModel]:
    """The cost models a study used, read back (see :meth:`HardwareModels.attrs`): the stored
    latency posynomial, the others rebuilt for ``space`` from the stored settings."""
    out: dict[str, CostModel] = {}
    latency = stored_latency(dict(attrs))
    if latency is not None:
        out["latency"] = _Stored(latency)
    settings = dict(attrs.get(StudyAttr.COST_SETTINGS) or {})
    if StudyAttr.MEMORY_BATCH_SIZE in attrs:
        settings.setdefault("batch_size", attrs[StudyAttr.MEMORY_BATCH_SIZE])
    known = {f.name for f in fields(CostSettings)}
    cost_settings = CostSettings(**{k: v for k, v in settings.items() if k in known})
    names = [
        k.name
        for k in COST_KINDS.values()
        if k.build is not None and k.name != "latency" and k.base_key in attrs
    ]
    return cost_models(space, names, cost_settings, out)


@dataclass(frozen=True)
class _Stored:
    """A stored posynomial as a cost model."""

    cost: Posynomial

    def __call__(self, widths: Sequence[int]) -> float:
        return float(self.cost(widths))


def stored_latency(attrs: dict[str, Any]) -> Posynomial | None:
    """The latency posynomial a study stored (see :meth:`HardwareModels.attrs`), or None."""
    model = attrs.get(StudyAttr.LATENCY_MODEL)
    if not model:
        return None
    return Posynomial(tuple((tuple(tuple(p) for p in m), c) for c, m in model["terms"]))


__all__ = ["HardwareModels", "hardware_models", "stored_latency", "stored_models"]
