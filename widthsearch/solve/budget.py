"""Budgets as a caller writes them: counts, ratios of the base, and the CLI's strings.

The CLI reads ``--params 0.5`` as half the base's params and ``--params 4.2M`` as a count.
Python callers of :func:`~widthsearch.solve.reconfigure` write the same budgets with the same
meaning, and this module is the one place that turns them into the absolute figures the
solve holds:

========================  =====================================================
``4_200_000`` (an int)    a count (params, MACs; bytes for memory)
``0.5`` (a float)         a ratio of the base's cost, as ``--params 0.5`` is
``Ratio(0.5)``            a ratio, said explicitly
``"0.5"``, ``"4.2M"``     the CLI's text: a ratio, or a count with K/M/G/T (or a number of
                          1000 or more); latency ``"12ms"``, memory ``"300MB"``
========================  =====================================================

A float of 1000 or more is refused rather than guessed at: as a ratio it would be absurd, and
earlier versions read it as a count, so such a call says how to write the count. Latency is
the exception to "a number is a count": latency has no count, so a plain number is
milliseconds (as it always was); ``Ratio(0.9)`` or ``"0.9"`` is a ratio of the base's predicted
latency.

Example:
    >>> from widthsearch.solve.budget import Ratio, resolve_count
    >>> resolve_count(0.5, 1000, "params"), resolve_count(Ratio(0.5), 1000, "params")
    (500, 500)
    >>> resolve_count("4.2K", 1000, "params"), resolve_count(300, 1000, "params")
    (4200, 300)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from widthsearch.errors import WidthSearchError

_COUNT = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*$", re.IGNORECASE)
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_NUMBER = r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*"
_TIME = re.compile(_NUMBER + r"(ms|s|us)?\s*$", re.IGNORECASE)
_BYTES = re.compile(_NUMBER + r"([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_BYTE_UNITS = {
    "b": 1,
    **{f"{p}b": 1000 ** (i + 1) for i, p in enumerate("kmgt")},
    **{f"{p}ib": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
}


def parse_budget(text: str | float, base: int, *, per: int = 1) -> int:
    """A budget from a ratio of ``base`` (``0.8``) or an absolute count (``4.2M``, ``300e6``).

    A number with a K/M/G suffix, or one of 1000 or more, is a count; a smaller plain number
    is a ratio. ``per`` converts counts into the budget's unit (``--flops`` counts FLOPs, two
    per MAC, so it passes ``per=2``).
    """
    m = _COUNT.match(str(text))
    if not m:
        raise WidthSearchError(f"budget '{text}' is neither a ratio (0.8) nor a count (4.2M)")
    value, suffix = float(m.group(1)), m.group(2).lower()
    if not math.isfinite(value * _SUFFIX[suffix]):
        raise WidthSearchError(f"budget '{text}' is too large to be a number of params or MACs")
    if value <= 0:
        raise WidthSearchError(
            f"budget '{text}' must be positive: a ratio of the base (0.8) or a count (4.2M)"
        )
    if suffix or value >= 1000:
        return math.floor(value * _SUFFIX[suffix] / per)
    return math.floor(value * base)


def parse_latency(text: str | float, base_ms: float) -> float:
    """A latency budget in ms: a ratio of the base's predicted latency (``0.9``) or a time
    (``12ms``, ``0.012s``; a number with a unit)."""
    m = _TIME.match(str(text))
    if not m:
        raise WidthSearchError(
            f"latency budget '{text}' is neither a ratio (0.9) nor a time (12ms, 0.012s)"
        )
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if value <= 0:
        raise WidthSearchError(
            f"latency budget '{text}' must be positive: a ratio (0.9) or a time (12ms)"
        )
    return value * _TIME_UNITS[unit] if unit else value * base_ms


def parse_memory(text: str | float, base_bytes: int) -> int:
    """An activation-memory budget in bytes: a ratio of the base's (``0.8``) or a size
    (``300MB``, ``1.5GiB``, ``250e6B``; a number with a unit)."""
    m = _BYTES.match(str(text))
    if not m:
        raise WidthSearchError(
            f"memory budget '{text}' is neither a ratio (0.8) nor a size (300MB, 1.5GiB)"
        )
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if value <= 0:
        raise WidthSearchError(
            f"memory budget '{text}' must be positive: a ratio (0.8) or a size (300MB)"
        )
    return math.floor(value * _BYTE_UNITS[unit] if unit else value * base_bytes)


RATIO_LIMIT = 1000.0
"""A float budget at or above this is refused: the CLI reads such a number as a count."""


@dataclass(frozen=True)
class Ratio:
    """A budget as a multiple of the base model's cost: ``Ratio(0.5)`` is half the base's.

    Raises:
        WidthSearchError: a ratio that is not a positive finite number.
    """

    value: float

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise WidthSearchError(f"Ratio takes a number, not {self.value!r}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise WidthSearchError(f"Ratio({self.value!r}): a ratio must be a positive number")


Budget = int | float | str | Ratio | None
"""What a budget argument takes (None: no budget on that cost)."""


def _number(spec: object, name: str) -> float:
    """A plain int or float budget, checked: positive, finite, not a bool."""
    if isinstance(spec, bool) or not isinstance(spec, (int, float)):
        raise WidthSearchError(
            f"{name}={spec!r}: give a count (an int), a ratio (a float, Ratio(0.5)) or text such "
            "as '0.5' or '4.2M'"
        )
    if not (math.isfinite(spec) and spec > 0):
        raise WidthSearchError(f"{name}={spec!r}: a budget must be a positive number")
    return float(spec)


def resolve_count(spec: Budget, base: int, name: str, *, per: int = 1) -> int | None:
    """A params, MACs or memory budget as an absolute count (rounded down), from a count, a
    ratio of ``base`` or the CLI's text (see the module's table). ``per`` converts counts in
    the text into the budget's unit (FLOPs: two per MAC).

    Raises:
        WidthSearchError: not a budget, not positive, or a float of :data:`RATIO_LIMIT` or more
            (write a count as an int or as text).
    """
    if spec is None:
        return None
    if isinstance(spec, Ratio):
        return math.floor(spec.value * base)
    if isinstance(spec, str):
        return parse_memory(spec, base) if name == "memory" else parse_budget(spec, base, per=per)
    value = _number(spec, name)
    if isinstance(spec, int):
        return spec
    if value >= RATIO_LIMIT:
        raise WidthSearchError(
            f"{name}={spec!r} is a float, which reads as a ratio of the base's cost; for a count "
            f"give an int ({name}={int(spec)}) or text ({name}='{spec:g}')"
        )
    return math.floor(value * base)


def resolve_latency(spec: Budget, base_ms: float | None) -> float | None:
    """A latency budget in ms: a number is milliseconds, ``Ratio(r)`` or ``"0.9"`` a ratio of
    ``base_ms`` (the base's predicted latency), ``"12ms"`` a time.

    Raises:
        WidthSearchError: not a budget, not positive, or a ratio without a latency model.
    """
    if spec is None:
        return None
    if isinstance(spec, (Ratio, str)) and base_ms is None:
        raise WidthSearchError("a latency ratio needs a latency model (latency_model=)")
    if isinstance(spec, Ratio):
        assert base_ms is not None
        return spec.value * base_ms
    if isinstance(spec, str):
        assert base_ms is not None
        return parse_latency(spec, base_ms)
    return _number(spec, "latency")


__all__ = [
    "RATIO_LIMIT",
    "Budget",
    "Ratio",
    "parse_budget",
    "parse_latency",
    "parse_memory",
    "resolve_count",
    "resolve_latency",
]
