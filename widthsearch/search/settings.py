"""What a search explores: the model, the ranges of the constraint mix, the sampler, the
hardware that predicted latency and memory are for.

:class:`SearchConfig` is everything :func:`~widthsearch.search.run_search` needs besides a
storage. A study file (:class:`widthsearch.studyfile.StudyConfig`) extends it with what
``run`` verifies and where it reports; the search reads only the fields defined here.

Example:
    >>> from widthsearch.search.settings import Ranges, SearchConfig
    >>> config = SearchConfig(model="resnet18", ranges=Ranges(macs=None), latency=True)
    >>> config.name, config.axes
    ('resnet18', ('log_synexp', 'params', 'macs', 'latency_ms'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Self

from widthsearch.errors import StudyConfigError, WidthSearchError
from widthsearch.solve import MODES, TIME_LIMIT
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, get_objective
from widthsearch.space.choices import GridSpec
from widthsearch.space.source import model_slug

SAMPLERS = ("qmc", "tpe", "nsga2", "random")
DEFAULT_SAMPLER = "qmc"
"""Scrambled Sobol points over the mix ranges, trial number n taking point n (see
:class:`~widthsearch.search.SobolMixes`)."""

AXES = ("log_synexp", "params", "macs")
"""The Pareto axes of a study of the default objective: log SynExp, params, MACs (stored as
the study attribute ``objectives``). Another objective's study has its name first
(:func:`value_axis`); a latency axis adds ``latency_ms``."""
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize", "minimize")
"""Directions of the objective's value, params and MACs; a latency axis adds one more minimize."""


def value_axis(objective: str) -> str:
    """The name of a study's first axis: ``log_synexp`` for SynExp (as studies always named
    it), else the objective's own name."""
    return "log_synexp" if objective == DEFAULT_OBJECTIVE else get_objective(objective).name


@dataclass(frozen=True)
class Ranges:
    """Ranges of the constraint mix; a budget range of None leaves that cost unconstrained."""

    params: tuple[float, float] | None = (0.2, 1.2)
    macs: tuple[float, float] | None = (0.2, 1.2)
    min_width: tuple[float, float] = (0.05, 0.25)
    max_width: tuple[float, float] = (1.25, 2.5)
    divisor: tuple[int, ...] = (8,)
    mode: tuple[str, ...] = MODES
    latency: tuple[float, float] | None = None
    """Predicted latency budget ratio of the base's (needs the study's latency model)."""
    memory: tuple[float, float] | None = None
    """Training activation memory budget ratio of the base's."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": None if self.params is None else list(self.params),
            "macs": None if self.macs is None else list(self.macs),
            "latency": None if self.latency is None else list(self.latency),
            "memory": None if self.memory is None else list(self.memory),
            "min_width": list(self.min_width),
            "max_width": list(self.max_width),
            "divisor": list(self.divisor),
            "mode": list(self.mode),
        }


@dataclass(frozen=True)
class Hardware:
    """What predicted latency and memory are for: a device profile and the settings."""

    profile: str | None = None
    """A latency profile file; None: a cached quick profile of this device, made if missing."""
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search needs besides storage."""

    model: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    trials: int = 200
    sampler: str | None = None
    """None: the stored study's sampler, or :data:`DEFAULT_SAMPLER` for a new study."""
    seed: int | None = None
    """None: the stored study's seed, or a new one (qmc draws and records one)."""
    ranges: Ranges = Ranges()
    study_name: str | None = None
    latency: bool = False
    """Predicted latency is an objective (set too by a latency range)."""
    hardware: Hardware = Hardware()
    grid: GridSpec = GridSpec()
    """Width grid and ties (a study file's ``[grid]``): every trial picks the best lattice
    point of its mix's budgets (:func:`widthsearch.solve.best_point`); empty: the divisor grid."""
    objective: str = DEFAULT_OBJECTIVE
    """What every trial's widths maximize (:data:`widthsearch.solve.objectives.OBJECTIVES`)."""
    time_limit: float = TIME_LIMIT
    """Seconds each trial's lattice search may take (grids only)."""

    @property
    def name(self) -> str:
        if self.study_name:
            return self.study_name
        return model_slug(self.model) if ":" in self.model else self.model  # net.py:Net -> Net

    @property
    def axes(self) -> tuple[str, ...]:
        """What each trial returns: the objective's value (max), then costs (min)."""
        base = (value_axis(self.objective), *AXES[1:])
        return (*base, "latency_ms") if self.latency or self.ranges.latency else base

    def with_options(self, **options: Any) -> Self:
        """A copy with command-line options (None: keep) applied and checked."""
        changes = {k: v for k, v in options.items() if v is not None}
        config = replace(self, **changes)
        config.check()
        return config

    def check(self) -> None:
        """Refuse an unknown sampler or fewer than one trial.

        Raises:
            StudyConfigError: naming the setting and what it may be.
        """
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise StudyConfigError(
                f"unknown sampler '{self.sampler}'; choose one of {', '.join(SAMPLERS)}"
            )
        if self.trials < 1:
            raise StudyConfigError(f"trials must be at least 1, got {self.trials}")
        if not self.time_limit > 0:
            raise StudyConfigError(f"time_limit must be positive, got {self.time_limit:g}")
        try:
            get_objective(self.objective)
        except WidthSearchError as exc:
            raise StudyConfigError(str(exc)) from None


__all__ = [
    "AXES",
    "DEFAULT_SAMPLER",
    "DIRECTIONS",
    "SAMPLERS",
    "Hardware",
    "Ranges",
    "SearchConfig",
    "value_axis",
]
