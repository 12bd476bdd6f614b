"""Cost kinds as a registry: each budgetable cost defined once, looked up by name.

A **cost kind** is something a budget can bound: params, MACs, predicted latency, the
activation memory a training step saves, the peak activation memory of an inference pass. Each
is defined here once, as a :class:`CostKind` (as timm registers its models and activation
layers): how a budget for it is written (a ratio of the base, or a count in its unit), its
label and unit, the key of its value in JSON, width files and trial summaries (and, with
``base_``, of the base's value in studies), its CLI flags, and how its cost model is built for
a width space. :class:`~widthsearch.solve.program.Budgets`, the search's ranges, study files,
width files, ``front``, reports and every command's flags iterate :data:`COST_KINDS`, so a new
kind is one :func:`register_cost` call and the model that computes it.

Params and MACs are the width space's own posynomials. The others are *cost models* built for
a width space from :class:`CostSettings` (the device profile, batch size, activation bytes):
anything with a ``cost`` (a :class:`~widthsearch.space.cost.Posynomial`, or a
:class:`~widthsearch.space.cost.MaxPosynomial` for a peak over moments) and a ``__call__`` on
widths. The geometric program, rounding and the lattice search hold a budget on every part of
a cost (a peak is at most its budget when every moment is).

The kinds widthsearch knows are registered in :mod:`widthsearch.solve.cost_kinds`, which the
``widthsearch.solve`` package imports, so they are there whenever any part of the solve is.

Example:
    >>> from widthsearch.solve.costs import COST_KINDS, get_cost
    >>> [k.name for k in COST_KINDS.values()][:2]
    ['params', 'macs']
    >>> get_cost("macs").parse("0.5", 1000), get_cost("latency").describe(12.5)
    (500, '12.50 ms')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol

from widthsearch.errors import WidthSearchError
from widthsearch.solve.budget import RATIO_LIMIT, Ratio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from widthsearch.space.cost import MaxPosynomial, Posynomial
    from widthsearch.space.width_space import WidthSpace

Unit = Literal["count", "ms", "bytes"]

_NUMBER = r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*"
_UNITS: dict[Unit, tuple[re.Pattern[str], dict[str, float], str]] = {
    "count": (
        re.compile(_NUMBER + r"([kmgt]?)\s*$", re.IGNORECASE),
        {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12},
        "a count (4.2M)",
    ),
    "ms": (
        re.compile(_NUMBER + r"(ms|s|us)?\s*$", re.IGNORECASE),
        {"us": 1e-3, "ms": 1.0, "s": 1e3},
        "a time (12ms, 0.012s)",
    ),
    "bytes": (
        re.compile(_NUMBER + r"([kmgt]i?b|b)?\s*$", re.IGNORECASE),
        {
            "b": 1,
            **{f"{p}b": 1000.0 ** (i + 1) for i, p in enumerate("kmgt")},
            **{f"{p}ib": 1024.0 ** (i + 1) for i, p in enumerate("kmgt")},
        },
        "a size (300MB, 256KiB)",
    ),
}


class CostModel(Protocol):
    """What a cost kind's model of a width space provides."""

    @property
    def cost(self) -> Posynomial | MaxPosynomial: ...

    def __call__(self, widths: Sequence[int]) -> float: ...


@dataclass(frozen=True)
class CostSettings:
    """What the cost models beyond params and MACs are for: the device a latency profile was
    measured on, the batch of latency and memory figures, the bytes of an activation."""

    profile: str | None = None
    """A latency profile file; None: a cached quick profile of this device, made if missing."""
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | None = None
    """Batch of the latency and training memory figures (None: the profile's, or 1)."""
    activation_bytes: int = 4
    """Bytes per activation element of the peak inference memory (4: float32, 1: int8)."""


@dataclass(frozen=True)
class Option:
    """A command-line option of :class:`CostSettings` (``--activation-bytes``), defined once
    for every command that takes it."""

    field: str
    flag: str
    help: str
    choices: tuple[Any, ...] | None = None
    kind: Literal["int", "str", "path"] = "str"


OPTIONS: tuple[Option, ...] = (
    Option(
        "profile",
        "--profile",
        "latency profile of this device (widthsearch profile); default: a cached quick profile, "
        "made if missing (about a minute)",
        kind="path",
    ),
    Option("device", "--device", "device the latency is for (cpu)", ("cpu", "cuda")),
    Option("threads", "--threads", "CPU threads (default: torch's)", kind="int"),
    Option(
        "batch_size",
        "--batch-size",
        "batch of the latency and memory figures (default: the profile's, or 1)",
        kind="int",
    ),
    Option(
        "activation_bytes",
        "--activation-bytes",
        "bytes per activation of the peak memory (4 float32, 2 float16, 1 int8; default 4)",
        (1, 2, 4),
        kind="int",
    ),
)
"""The options of :class:`CostSettings`, in the order ``--help`` lists them."""


Counter = Callable[[Any, "WidthSpace", CostSettings], float]
"""Counts a kind's figure on a realized model (an ``nn.Module`` of the width space)."""
Builder = Callable[["WidthSpace", CostSettings, "Mapping[str, CostModel]"], CostModel]
"""Builds a kind's model for a width space (the models built before it are passed in: memory
takes the batch of the latency model)."""


@dataclass(frozen=True)
class CostKind:
    """One budgetable cost, defined once.

    Attributes:
        name: the registry key, the :class:`~widthsearch.solve.program.Budgets` field, the
            search range and budget ratio prefix (``{name}_ratio``).
        label: how messages name it (``"MACs"``, ``"latency"``).
        noun: how a sentence about the model's figure names it (``"predicted latency"``).
        unit: ``"count"``, ``"ms"`` or ``"bytes"``: how a budget is written and values shown.
        key: the key of its value in JSON output, width files and trial summaries
            (``base_{key}``: the base's value; ``{name}_ratio``: the ratio to it).
        column: its column header in tables and reports.
        flag: the budget flag (``--macs``); ``same_flag`` holds it at the base's value.
        help: the budget flag's help.
        build: how its model is built for a width space; None: the space's own posynomial.
        count: how its figure is counted on a realized model (memory, peak memory).
        options: the :class:`CostSettings` fields its model depends on.
    """

    name: str
    label: str
    noun: str
    unit: Unit
    key: str
    column: str
    flag: str
    help: str
    same_flag: str | None = None
    build: Builder | None = None
    count: Counter | None = None
    """The reference count on a realized model (what ``bench`` and the tests hold the model's
    prediction to); None where the figure is measured, not counted (latency)."""
    options: tuple[str, ...] = ()
    short: str = ""
    """A few letters for narrow table headers (``B_lat``); default the name."""
    display: tuple[str, float] = ("MB", 1e6)
    """The unit and scale bytes are shown in (``("KB", 1e3)`` for a peak of kilobytes)."""
    explain: str = ""
    """What a predicted figure means, for the line under a table (``{batch}``: its batch)."""
    aliases: tuple[tuple[str, float, str], ...] = field(default=())
    """Other budget flags: (flag, units of this kind per unit of the flag's counts, help);
    ``--flops`` counts two FLOPs per MAC."""

    @property
    def ratio_key(self) -> str:
        return f"{self.name}_ratio"

    @property
    def base_key(self) -> str:
        return f"base_{self.key}"

    def parse(self, text: str | float, base: float, *, per: float = 1) -> float:
        """A budget from a ratio of ``base`` (``0.8``) or an amount in this kind's unit
        (``4.2M``, ``12ms``, ``300MB``). A count with a K/M/G suffix, or of 1000 or more, is a
        count; a time or a size needs its unit. Counts and bytes are rounded down. ``per``
        converts counts of another unit (``--flops`` passes 2: two FLOPs per MAC).

        Raises:
            WidthSearchError: not a ratio nor an amount, not positive, or not finite.
        """
        pattern, units, example = _UNITS[self.unit]
        m = pattern.match(str(text))
        if not m:
            raise WidthSearchError(
                f"{self.label} budget '{text}' is neither a ratio (0.8) nor {example}"
            )
        value, unit = float(m.group(1)), (m.group(2) or "").lower()
        scale = units.get(unit, 1)
        if not math.isfinite(value * scale):
            raise WidthSearchError(f"{self.label} budget '{text}' is too large to be a number")
        if value <= 0:
            raise WidthSearchError(
                f"{self.label} budget '{text}' must be positive: a ratio (0.8) or {example}"
            )
        amount = bool(unit) or (self.unit == "count" and value >= 1000)
        out = value * scale / per if amount else value * base
        return float(out) if self.unit == "ms" else math.floor(out)

    def resolve(self, spec: Any, base: float | None) -> float | None:
        """A budget as the Python API writes it, absolute: None (no budget), ``Ratio(r)`` (a
        ratio of ``base``), text (as :meth:`parse`), an int (a count; bytes for memory) or a
        float (a ratio) for counts and bytes, a number of milliseconds for a time.

        Raises:
            WidthSearchError: not a budget, not positive, a ratio without a base (no cost
                model), or a float of :data:`RATIO_LIMIT` or more for a count.
        """
        if spec is None:
            return None
        if isinstance(spec, (Ratio, str)) and base is None:
            raise WidthSearchError(f"a {self.label} ratio needs its model of the base")
        if isinstance(spec, Ratio):
            assert base is not None
            out = spec.value * base
            return out if self.unit == "ms" else math.floor(out)
        if isinstance(spec, str):
            assert base is not None
            return self.parse(spec, base)
        if isinstance(spec, bool) or not isinstance(spec, (int, float)):
            raise WidthSearchError(
                f"{self.name}={spec!r}: give a count (an int), a ratio (a float, Ratio(0.5)) or "
                "text such as '0.5' or '4.2M'"
            )
        if not (math.isfinite(spec) and spec > 0):
            raise WidthSearchError(f"{self.name}={spec!r}: a budget must be a positive number")
        if self.unit == "ms":
            return float(spec)
        if isinstance(spec, int):
            return spec
        if spec >= RATIO_LIMIT:
            raise WidthSearchError(
                f"{self.name}={spec!r} is a float, which reads as a ratio of the base's cost; for "
                f"a count give an int ({self.name}={int(spec)}) or text ({self.name}='{spec:g}')"
            )
        if base is None:
            raise WidthSearchError(f"a {self.label} ratio needs its model of the base")
        return math.floor(spec * base)

    def describe(self, value: float) -> str:
        """A value in its unit: counts with commas, milliseconds, bytes in KB or MB."""
        return f"{self.number(value)} {self.display_unit}".rstrip()

    def number(self, value: float) -> str:
        """A value as a number in :attr:`display_unit` (``"12.50"`` ms, ``"3.2"`` MB)."""
        if self.unit == "ms":
            return f"{value:.2f}"
        if self.unit == "bytes":
            return f"{value / self.display[1]:,.1f}"
        return f"{math.ceil(value):,}"

    @property
    def display_unit(self) -> str:
        """The unit values are shown in: ``"ms"``, ``"MB"``, ``"KB"``, or ``""`` for counts."""
        return {"ms": "ms", "bytes": self.display[0]}.get(self.unit, "")

    @property
    def hold(self) -> str:
        """The flags that hold this cost: ``--same-flops (or --macs R)``."""
        if self.same_flag:
            return f"{self.same_flag} (or {self.flag} R)"
        return f"{self.flag} 1 (or {self.flag} R)"


COST_KINDS: dict[str, CostKind] = {}
"""Every cost kind by name, in the order tables and messages list them."""


def register_cost(kind: CostKind) -> CostKind:
    """Add ``kind`` to :data:`COST_KINDS` (a name may be registered once)."""
    if kind.name in COST_KINDS:
        raise ValueError(f"cost kind '{kind.name}' is registered already")
    bad = [o for o in kind.options if o not in {f.name for f in fields(CostSettings)}]
    if bad:
        raise ValueError(f"cost kind '{kind.name}' names an unknown setting '{bad[0]}'")
    COST_KINDS[kind.name] = kind
    return kind


def get_cost(name: str) -> CostKind:
    """The cost kind called ``name``.

    Raises:
        WidthSearchError: an unknown name; the message lists the known ones.
    """
    try:
        return COST_KINDS[name]
    except KeyError:
        raise WidthSearchError(
            f"unknown cost '{name}'; choose from {', '.join(COST_KINDS)}"
        ) from None


def cost_models(
    space: WidthSpace,
    names: Sequence[str],
    settings: CostSettings = CostSettings(),
    built: Mapping[str, CostModel] | None = None,
) -> dict[str, CostModel]:
    """The models of the cost kinds ``names`` for ``space`` (params and MACs need none and
    are left out), in registry order; ``built`` holds models already made (a latency model
    resolved with its progress lines, say), which are kept."""
    out: dict[str, CostModel] = dict(built or {})
    for kind in COST_KINDS.values():
        if kind.name in names and kind.build is not None and kind.name not in out:
            out[kind.name] = kind.build(space, settings, out)
    return {k.name: out[k.name] for k in COST_KINDS.values() if k.name in out}


__all__ = [
    "COST_KINDS",
    "OPTIONS",
    "Builder",
    "CostKind",
    "CostModel",
    "CostSettings",
    "Counter",
    "Option",
    "Unit",
    "cost_models",
    "get_cost",
    "register_cost",
]
