"""Study definitions: what a search explores, read from TOML or defaults.

A study file names the model and the ranges of the constraint mix each trial samples::

    model = "efficientnet_b0"
    input_size = [3, 224, 224]

    [timm_kwargs]            # passed to timm.create_model (any keys timm takes)
    num_classes = 1000

    [grid]                   # optional: a width grid and ties (docs/concepts/grids-and-ties.md)
    choices = "0.25x,0.5x,0.75x,1x"   # or widths "8,16,24,32"; default: the divisor grid
    ties = [["blocks.1.*.conv_pw"]]   # each list: producer globs that share one width
    [grid.groups]            # per producer glob, first match wins
    "conv_head" = "1x"

``model`` may also be your own model, ``"path/to/net.py:NAME"`` or ``"package.module:NAME"``
(``NAME`` a class or function returning an ``nn.Module``), with its keyword arguments in a
``[model_kwargs]`` table (a synonym of ``[timm_kwargs]``; give one of them)::

    model = "nets/tiny.py:TinyNet"
    [model_kwargs]
    widths = [16, 32, 64]
    num_classes = 10

    [search]
    study = "efficientnet_b0"  # study name (default: the model)
    trials = 200
    sampler = "qmc"          # qmc | tpe | nsga2 | random
    seed = 0

    latency = true           # predicted latency as a fourth objective (see below)
    profile = "eff.json"     # latency profile of the device; default: a cached quick one
    device = "cpu"           # what the latency is for: cpu | cuda, threads, batch_size
    threads = 1
    batch_size = 1

    [search.ranges]
    params = [0.7, 1.0]      # budget ratios of the base model; false: unconstrained
    macs = [1.0, 1.0]
    latency = [0.8, 1.0]     # predicted latency ratio of the base's; sets latency = true
    memory = [0.8, 1.2]      # training activation memory ratio (at batch_size)
    min_width = [0.05, 0.25]
    max_width = [1.25, 2.5]  # PreConfig only; PreCrop is capped at 1
    divisor = [8]            # choices
    mode = ["preconfig"]     # choices: precrop, preconfig

    [verify]                 # what ``widthsearch run`` trains after the search
    data = "digits"          # digits | mnist:DIR | cifar10:DIR | cifar100:DIR | imagefolder:DIR
    input_size = [3, 32, 32] # training input size (default: the search's)
    top = 3
    random = 0               # random-shape controls at the candidate's MACs
    match = "macs"           # controls at the candidate's macs | params
    epochs = 10
    batch_size = 64
    lr = 0.002
    seeds = [0, 1, 2]
    output = "out"           # the part of the model's output to train on (default: the rule
                             # of widthsearch.train.output: a tensor, a dict's logits or out, ...)

    [report]
    path = "reports/efficientnet_b0"

Every key is checked: an unknown one is an error that names the closest valid key (the keys of
``[timm_kwargs]`` and ``[model_kwargs]`` go to the model as they are). The README has the
reference table of every key.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from widthsearch.errors import GridError, StudyConfigError
from widthsearch.search.settings import DEFAULT_SAMPLER as DEFAULT_SAMPLER
from widthsearch.search.settings import SAMPLERS, Hardware, Ranges, SearchConfig
from widthsearch.solve.costs import COST_KINDS, OPTIONS, CostSettings
from widthsearch.solve.lattice import TIME_LIMIT
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from widthsearch.solve.program import MODES
from widthsearch.space.choices import GridSpec
from widthsearch.train.augment import POLICIES as AUGMENTS
from widthsearch.train.head import POLICIES as HEADS
from widthsearch.train.stem import POLICIES as STEMS
from widthsearch.verify.settings import MATCHES, VerifySettings


@dataclass(frozen=True)
class StudyConfig(SearchConfig):
    """A study file: the search (:class:`~widthsearch.search.SearchConfig`, every field of it),
    then what ``run`` verifies after it and where it reports."""

    verify: VerifySettings | None = None
    """None: the study file has no [verify] section, ``run`` trains nothing."""
    report: str | None = None
    """Folder ``run`` writes the report to (``[report] path``)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@overload
def _pair(value: Any, key: str) -> tuple[float, float]: ...
@overload
def _pair(value: Any, key: str, *, allow_none: bool) -> tuple[float, float] | None: ...
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


TOP_KEYS = (
    "model",
    "input_size",
    "timm_kwargs",
    "model_kwargs",
    "grid",
    "search",
    "verify",
    "report",
)
GRID_KEYS = ("choices", "groups", "ties")
SEARCH_KEYS = (
    "study",
    "trials",
    "sampler",
    "seed",
    "objective",
    "time_limit",
    "ranges",
    "latency",
    *(o.field for o in OPTIONS),
)
REPORT_KEYS = ("path",)


def _check_keys(table: Mapping[str, Any], valid: Iterable[str], section: str = "") -> None:
    """Refuse a key that is not in ``valid``, naming the closest valid one."""
    valid = list(valid)
    for key in table:
        if key in valid:
            continue
        where = f"{section}.{key}" if section else key
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = (
            f"did you mean '{f'{section}.{close[0]}' if section else close[0]}'?"
            if close
            else f"valid keys{f' in [{section}]' if section else ''}: {', '.join(valid)}"
        )
        raise StudyConfigError(f"unknown key '{where}' ({hint})")


def _table(value: Any, section: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StudyConfigError(f"[{section}] must be a table")
    return value


def _int(value: Any, key: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyConfigError(f"{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise StudyConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise StudyConfigError(f"{key} must be a string, got {value!r}")
    return value


def parse_config(data: Mapping[str, Any], source: str = "study") -> StudyConfig:
    """A :class:`StudyConfig` from parsed TOML (``source`` names it in errors).

    Every key is checked: an unknown one (a typo such as ``trails`` or ``[serch]``) is an error
    naming the closest valid key; only ``[timm_kwargs]`` (or ``[model_kwargs]``) passes its
    keys on unchecked.
    """
    try:
        return _parse(data)
    except StudyConfigError as exc:
        raise StudyConfigError(f"{source}: {exc}") from None


def _parse(data: Mapping[str, Any]) -> StudyConfig:
    _check_keys(data, TOP_KEYS)
    if "model" not in data:
        raise StudyConfigError("'model' is missing")
    model = _str(data["model"], "model")
    if "timm_kwargs" in data and "model_kwargs" in data:
        raise StudyConfigError("give [model_kwargs] or [timm_kwargs], not both")
    kwargs_key = "model_kwargs" if "model_kwargs" in data else "timm_kwargs"
    search = _table(data.get("search", {}), "search")
    _check_keys(search, SEARCH_KEYS, "search")
    ranges = _table(search.get("ranges", {}), "search.ranges")
    _check_keys(ranges, Ranges.file_keys(), "search.ranges")
    default = Ranges()
    budgets = {
        name: _pair(ranges[name], name, allow_none=True) for name in COST_KINDS if name in ranges
    }
    r = Ranges(
        min_width=_pair(ranges.get("min_width", list(default.min_width)), "min_width"),
        max_width=_pair(ranges.get("max_width", list(default.max_width)), "max_width"),
        divisor=_choices(ranges.get("divisor", list(default.divisor)), "divisor", None, int),
        mode=_choices(ranges.get("mode", list(default.mode)), "mode", MODES, str),
    ).replace(**budgets)
    if not r.ranged:
        raise StudyConfigError("ranges.params and ranges.macs cannot both be false")
    seed = search.get("seed")
    config = StudyConfig(
        verify=_verify(data.get("verify")),
        report=_report(data.get("report")),
        model=model,
        input_size=_size(data.get("input_size", [3, 224, 224]), "input_size"),
        timm_kwargs=dict(_table(data.get(kwargs_key, {}), kwargs_key)),
        trials=_int(search.get("trials", 200), "search.trials", minimum=1),
        sampler=None if "sampler" not in search else _str(search["sampler"], "search.sampler"),
        seed=None if seed is None else _int(seed, "search.seed"),
        ranges=r,
        study_name=None if "study" not in search else _str(search["study"], "search.study"),
        latency=_flag(search.get("latency", False), "search.latency"),
        hardware=_hardware(search),
        objective=_objective(search.get("objective", DEFAULT_OBJECTIVE)),
        time_limit=_seconds(search.get("time_limit", TIME_LIMIT), "search.time_limit"),
        grid=_grid(data.get("grid")),
        raw=dict(data),
    )
    config.check()
    return config


def _grid(section: Any) -> GridSpec:
    """The ``[grid]`` table: ``choices`` for every free group, ``[grid.groups]`` lists per
    producer glob, ``ties`` a list of lists of globs."""
    if section is None:
        return GridSpec()
    table = _table(section, "grid")
    _check_keys(table, GRID_KEYS, "grid")
    groups = _table(table.get("groups", {}), "grid.groups")
    ties = table.get("ties", [])
    if not isinstance(ties, list) or not all(
        isinstance(t, list) and all(isinstance(g, str) for g in t) for t in ties
    ):
        raise StudyConfigError('grid.ties must be a list of lists of globs: [["layer1.*"]]')
    try:
        return GridSpec.from_dict({**table, "groups": groups, "ties": ties})
    except GridError as exc:
        raise StudyConfigError(f"[grid]: {exc}") from None


def _objective(value: Any) -> str:
    if not isinstance(value, str) or value not in OBJECTIVES:
        raise StudyConfigError(
            f"search.objective must be one of {', '.join(OBJECTIVES)}, not {value!r}"
        )
    return value


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise StudyConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    return float(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise StudyConfigError(f"{key} must be true or false")
    return value


def _hardware(search: Mapping[str, Any]) -> CostSettings:
    """The [search] keys that say what the cost models are for (:data:`~widthsearch.solve.
    costs.OPTIONS`: profile, device, threads, batch_size, activation_bytes)."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        v = search.get(option.field)
        if v is None:
            continue
        key = f"search.{option.field}"
        if option.kind in ("str", "path") and not isinstance(v, str):
            raise StudyConfigError(f"{key} must be a string")
        if option.kind == "int" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise StudyConfigError(f"{key} must be a positive integer")
        if option.choices is not None and v not in option.choices:
            allowed = ", ".join(str(c) for c in option.choices)
            raise StudyConfigError(f"{key} must be one of {allowed}")
        values[option.field] = v
    return CostSettings(**values)


def _size(value: Any, key: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise StudyConfigError(f"{key} must be [C, H, W] with positive integers")
    return value[0], value[1], value[2]


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StudyConfigError(f"{key} must be an integer >= 0")
    return value


VERIFY_KEYS = (
    "data",
    "input_size",
    "top",
    "random",
    "match",
    "epochs",
    "batch_size",
    "lr",
    "seeds",
    "augment",
    "stem",
    "head",
    "output",
)
"""The keys of ``[verify]``: :class:`VerifySettings` but its quick-check fields (``max_steps``,
``train_subset``), which are options of a command, not of a study."""


def _verify(section: Any) -> VerifySettings | None:
    if section is None:
        return None
    _check_keys(_table(section, "verify"), VERIFY_KEYS, "verify")
    d = VerifySettings()

    def positive(key: str, kind: type[int] | type[float]) -> Any:
        v = section.get(key, getattr(d, key))
        if isinstance(v, bool) or not isinstance(v, (kind, int)) or not v > 0:
            raise StudyConfigError(f"verify.{key} must be a positive {kind.__name__}")
        return kind(v)

    seeds = section.get("seeds", list(d.seeds))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(v, int) for v in seeds):
        raise StudyConfigError("verify.seeds must be a non-empty list of integers")
    data = section.get("data", d.data)
    if not isinstance(data, str):
        raise StudyConfigError("verify.data must be a string such as digits or mnist:DIR")
    size = section.get("input_size")
    output = section.get("output")
    if output is not None and (not isinstance(output, str) or not output):
        raise StudyConfigError(
            'verify.output must name the part of the model\'s output to train on, such as "out"'
        )
    choices = {"augment": ("auto", *AUGMENTS), "stem": STEMS, "head": HEADS, "match": MATCHES}
    policy = {}
    for key, allowed in choices.items():
        v = section.get(key, getattr(d, key))
        if v not in allowed:
            raise StudyConfigError(f"verify.{key} must be one of {', '.join(allowed)}, not {v!r}")
        policy[key] = v
    return VerifySettings(
        **policy,
        data=data,
        input_size=None if size is None else _size(size, "verify.input_size"),
        top=positive("top", int),
        random=_count(section.get("random", d.random), "verify.random"),
        epochs=positive("epochs", int),
        batch_size=positive("batch_size", int),
        lr=positive("lr", float),
        seeds=tuple(seeds),
        output=output,
    )


def _report(section: Any) -> str | None:
    if section is None:
        return None
    _check_keys(_table(section, "report"), REPORT_KEYS, "report")
    if not isinstance(section.get("path"), str):
        raise StudyConfigError('[report] needs path = "reports/NAME"')
    return section["path"]


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


__all__ = [
    "SAMPLERS",
    "Hardware",
    "Ranges",
    "StudyConfig",
    "StudyConfigError",
    "VerifySettings",
    "load_config",
    "parse_config",
]
