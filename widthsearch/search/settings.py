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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Self

from widthsearch.errors import StudyConfigError, WidthSearchError
from widthsearch.solve import MODES, TIME_LIMIT
from widthsearch.solve.costs import COST_KINDS, CostSettings
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


Range = tuple[float, float]
DEFAULT_BUDGET_RANGES: dict[str, Range] = {"params": (0.2, 1.2), "macs": (0.2, 1.2)}
"""The budget ranges of a study that sets none: params and MACs from 0.2x to 1.2x the base's
(every other cost kind unconstrained)."""
BOUND_KEYS = ("min_width", "max_width", "divisor", "mode")


@dataclass(frozen=True, init=False)
class Ranges:
    """Ranges of the constraint mix: one budget range per cost kind
    (:data:`widthsearch.solve.costs.COST_KINDS`, ratios of the base's cost; None leaves that
    cost unconstrained), and the width bounds, divisors and modes trials take.

    ``Ranges(macs=(0.5, 1.0), params=None, latency=(0.8, 1.0))``: each cost kind is a keyword
    and an attribute (``ranges.macs``). Params and MACs default to
    :data:`DEFAULT_BUDGET_RANGES`, the other kinds to None.

    Raises:
        TypeError: a keyword that names neither a cost kind nor a bound.
    """

    budgets: tuple[tuple[str, Range | None], ...]
    """(cost name, range or None) for every cost kind, in registry order."""
    min_width: Range = (0.05, 0.25)
    max_width: Range = (1.25, 2.5)
    divisor: tuple[int, ...] = (8,)
    mode: tuple[str, ...] = MODES

    def __init__(
        self,
        *,
        min_width: Range = (0.05, 0.25),
        max_width: Range = (1.25, 2.5),
        divisor: tuple[int, ...] = (8,),
        mode: tuple[str, ...] = MODES,
        budgets: Iterable[tuple[str, Range | None]] | None = None,
        **ranges: Range | None,
    ) -> None:
        unknown = [k for k in ranges if k not in COST_KINDS]
        if unknown:
            raise TypeError(
                f"Ranges() got an unknown key '{unknown[0]}'; budget ranges: "
                f"{', '.join(COST_KINDS)}; bounds: {', '.join(BOUND_KEYS)}"
            )
        # ``budgets``: all of them at once, as dataclasses.replace hands them back
        given = {**(dict(budgets) if budgets is not None else DEFAULT_BUDGET_RANGES), **ranges}
        pairs = tuple((k, None if given.get(k) is None else _range(given[k])) for k in COST_KINDS)
        object.__setattr__(self, "budgets", pairs)
        object.__setattr__(self, "min_width", tuple(min_width))
        object.__setattr__(self, "max_width", tuple(max_width))
        object.__setattr__(self, "divisor", tuple(divisor))
        object.__setattr__(self, "mode", tuple(mode))

    def __getattr__(self, name: str) -> Range | None:
        if name in COST_KINDS:
            return dict(self.budgets).get(name)
        raise AttributeError(f"'Ranges' has no attribute '{name}'")

    def budget(self, name: str) -> Range | None:
        """The budget range of cost kind ``name`` (None: unconstrained)."""
        return dict(self.budgets).get(name)

    @property
    def ranged(self) -> tuple[str, ...]:
        """The cost kinds with a budget range, in registry order."""
        return tuple(k for k, r in self.budgets if r is not None)

    def replace(self, **changes: Any) -> Ranges:
        """A copy with ``changes`` (cost kinds and bounds by name)."""
        bounds = {k: getattr(self, k) for k in BOUND_KEYS}
        return Ranges(**{**bounds, **dict(self.budgets), **changes})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: None if r is None else list(r) for k, r in self.budgets}
        return out | {
            "min_width": list(self.min_width),
            "max_width": list(self.max_width),
            "divisor": list(self.divisor),
            "mode": list(self.mode),
        }

    @classmethod
    def file_keys(cls) -> tuple[str, ...]:
        """Every key a study file's ``[search.ranges]`` takes."""
        return (*COST_KINDS, *BOUND_KEYS)


def _range(value: Any) -> Range:
    lo, hi = value
    return float(lo), float(hi)


Hardware = CostSettings
"""What predicted latency and memory are for (the old name of
:class:`~widthsearch.solve.costs.CostSettings`)."""


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
    hardware: CostSettings = CostSettings()
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
        return (*base, "latency_ms") if self.latency or self.ranges.budget("latency") else base

    @property
    def modelled(self) -> tuple[str, ...]:
        """The cost kinds beyond params and MACs whose models the study needs: those with a
        budget range, and latency where it is an axis."""
        wanted = set(self.ranges.ranged) | ({"latency"} if "latency_ms" in self.axes else set())
        return tuple(k.name for k in COST_KINDS.values() if k.build and k.name in wanted)

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
    "BOUND_KEYS",
    "DEFAULT_BUDGET_RANGES",
    "DEFAULT_SAMPLER",
    "DIRECTIONS",
    "SAMPLERS",
    "Hardware",
    "Range",
    "Ranges",
    "SearchConfig",
    "value_axis",
]
