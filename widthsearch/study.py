"""Study definitions: what a search explores, read from TOML or defaults.

A study file names the model and the ranges of the constraint mix each trial samples::

    model = "efficientnet_b0"
    input_size = [3, 224, 224]

    [search]
    trials = 200
    sampler = "tpe"          # tpe | nsga2 | random
    seed = 0

    [search.ranges]
    params = [0.7, 1.0]      # budget ratios of the base model; false: unconstrained
    macs = [1.0, 1.0]
    min_width = [0.05, 0.25]
    max_width = [1.25, 2.5]  # PreConfig only; PreCrop is capped at 1
    divisor = [8]            # choices
    mode = ["preconfig"]     # choices: precrop, preconfig

Later sections (``[verify]``, ``[report]``) belong to the commands that read them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import WidthSearchError
from .solve import MODES

SAMPLERS = ("tpe", "nsga2", "random")


class StudyConfigError(WidthSearchError, ValueError):
    """A study file or option that cannot be used."""


@dataclass(frozen=True)
class Ranges:
    """Ranges of the constraint mix; a budget range of None leaves that cost unconstrained."""

    params: tuple[float, float] | None = (0.2, 1.2)
    macs: tuple[float, float] | None = (0.2, 1.2)
    min_width: tuple[float, float] = (0.05, 0.25)
    max_width: tuple[float, float] = (1.25, 2.5)
    divisor: tuple[int, ...] = (8,)
    mode: tuple[str, ...] = MODES

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": None if self.params is None else list(self.params),
            "macs": None if self.macs is None else list(self.macs),
            "min_width": list(self.min_width),
            "max_width": list(self.max_width),
            "divisor": list(self.divisor),
            "mode": list(self.mode),
        }


@dataclass(frozen=True)
class StudyConfig:
    """Everything a search needs besides storage."""

    model: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    trials: int = 200
    sampler: str = "tpe"
    seed: int | None = None
    ranges: Ranges = Ranges()
    study_name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.study_name or self.model

    def with_options(self, **options: Any) -> StudyConfig:
        """A copy with command-line options (None: keep) applied and checked."""
        changes = {k: v for k, v in options.items() if v is not None}
        config = replace(self, **changes)
        config.check()
        return config

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise StudyConfigError(
                f"unknown sampler '{self.sampler}'; choose one of {', '.join(SAMPLERS)}"
            )
        if self.trials < 1:
            raise StudyConfigError(f"trials must be at least 1, got {self.trials}")


def _pair(value: Any, key: str, *, allow_none: bool = False) -> tuple[float, float] | None:
    if value is False and allow_none:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and 0 < value[0] <= value[1]
    ):
        return float(value[0]), float(value[1])
    none = " or false" if allow_none else ""
    raise StudyConfigError(f"ranges.{key} must be [low, high] with 0 < low <= high{none}")


def _choices(value: Any, key: str, allowed: tuple | None, kind: type) -> tuple:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    ):
        raise StudyConfigError(f"ranges.{key} must be a non-empty list of {kind.__name__}s")
    if allowed is not None and any(v not in allowed for v in value):
        raise StudyConfigError(f"ranges.{key} entries must be among {', '.join(allowed)}")
    if kind is int and any(v < 1 for v in value):
        raise StudyConfigError(f"ranges.{key} entries must be positive")
    return tuple(value)


def parse_config(data: Mapping[str, Any], source: str = "study") -> StudyConfig:
    """A :class:`StudyConfig` from parsed TOML (``source`` names it in errors)."""
    try:
        model = data["model"]
    except KeyError:
        raise StudyConfigError(f"{source}: 'model' is missing") from None
    if not isinstance(model, str):
        raise StudyConfigError(f"{source}: 'model' must be a string")
    search = data.get("search", {})
    ranges = search.get("ranges", {})
    if not isinstance(search, dict) or not isinstance(ranges, dict):
        raise StudyConfigError(f"{source}: [search] and [search.ranges] must be tables")
    unknown = set(ranges) - set(Ranges.__dataclass_fields__)
    if unknown:
        raise StudyConfigError(f"{source}: unknown range {sorted(unknown)}")
    default = Ranges()
    try:
        r = Ranges(
            params=_pair(ranges["params"], "params", allow_none=True)
            if "params" in ranges
            else default.params,
            macs=_pair(ranges["macs"], "macs", allow_none=True)
            if "macs" in ranges
            else default.macs,
            min_width=_pair(ranges.get("min_width", list(default.min_width)), "min_width"),
            max_width=_pair(ranges.get("max_width", list(default.max_width)), "max_width"),
            divisor=_choices(ranges.get("divisor", list(default.divisor)), "divisor", None, int),
            mode=_choices(ranges.get("mode", list(default.mode)), "mode", MODES, str),
        )
        if r.params is None and r.macs is None:
            raise StudyConfigError("ranges.params and ranges.macs cannot both be false")
        input_size = tuple(data.get("input_size", (3, 224, 224)))
        if len(input_size) != 3 or not all(isinstance(v, int) and v > 0 for v in input_size):
            raise StudyConfigError("input_size must be [C, H, W] with positive integers")
        config = StudyConfig(
            model=model,
            input_size=input_size,  # type: ignore[arg-type]
            timm_kwargs=dict(data.get("timm_kwargs", {})),
            trials=int(search.get("trials", 200)),
            sampler=str(search.get("sampler", "tpe")),
            seed=search.get("seed"),
            ranges=r,
            study_name=search.get("study"),
            raw=dict(data),
        )
        config.check()
    except StudyConfigError as exc:
        raise StudyConfigError(f"{source}: {exc}") from None
    return config


def load_config(path: str | Path) -> StudyConfig:
    """Read a TOML study file.

    Raises:
        StudyConfigError: the file is missing, not TOML, or its values are out of range.
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StudyConfigError(f"no study file at {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudyConfigError(f"{path} is not valid TOML ({exc})") from None
    return parse_config(data, str(path))


__all__ = ["SAMPLERS", "Ranges", "StudyConfig", "StudyConfigError", "load_config", "parse_config"]
