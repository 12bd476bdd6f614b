"""Paired verdicts: is a candidate better than a reference trained with the same seeds?

Two models trained with the same seed share their initial RNG state and their data order, so
the difference of their accuracies seed by seed (a *paired* difference) removes much of the
seed-to-seed noise that both see. :func:`paired` takes the mean paired difference over the seeds
both have, a two-sided Student-t confidence interval around it (default 95%), and labels it:

- ``better``: the whole interval is above zero;
- ``worse``: the whole interval is below zero;
- ``no detectable difference``: the interval holds zero; said as "equal within ±X" with X
  the interval's farthest end from zero (:attr:`Verdict.bound`);
- ``n=1, no verdict``: one shared seed gives a difference but no spread;
- ``no shared seeds``: nothing to pair.

Top-1 moves in steps of one validation image, and with few seeds the differences can agree by
chance (two seeds, each two images worse, give a spread of exactly zero and an interval of zero
width). ``resolution`` (one image: ``1 / validation images``) is therefore a floor on the
standard deviation used for the interval. Intervals are per comparison, not corrected for the
number of candidates compared.

Every verdict says what it could resolve: the interval's half width, ``t * sd / sqrt(n)`` at
the same level, is the smallest mean difference that these seeds, with the spread they showed,
could have called better or worse (:attr:`Verdict.detectable`).

Example:
    >>> v = paired({0: 0.90, 1: 0.92, 2: 0.91}, {0: 0.85, 1: 0.88, 2: 0.86})
    >>> v.label, round(v.mean, 3), v.n
    ('better', 0.047, 3)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

LEVEL = 0.95
BETTER = "better"
WORSE = "worse"
SAME = "no detectable difference"
ONE = "n=1, no verdict"
NONE = "no shared seeds"
LABELS = (BETTER, WORSE, SAME, ONE, NONE)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (scipy's)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Verdict:
    """A candidate against one reference, paired by seed (differences: candidate - reference)."""

    reference: str
    """The reference's label, e.g. ``base`` or ``uniform 0.94x``."""
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: float | None
    std: float | None
    """Sample standard deviation of the differences (None below two seeds)."""
    low: float | None
    high: float | None
    """The confidence interval of the mean difference (None below two seeds)."""
    level: float
    label: str

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2

    @property
    def detectable(self) -> float | None:
        """The smallest mean difference this comparison could have called better or worse:
        ``t(1 - (1 - level) / 2, n - 1) * sd / sqrt(n)`` with the observed spread of the
        paired differences (floored at the metric's resolution), i.e. the interval's half
        width. None below two seeds: one difference has no spread, so nothing is resolved."""
        return self.half_width

    @property
    def bound(self) -> float | None:
        """How far from zero the difference can be, at the level: ``max(|low|, |high|)``;
        "equal within ±bound" is what a ``no detectable difference`` may claim."""
        if self.low is None or self.high is None:
            return None
        return max(abs(self.low), abs(self.high))

    def interval(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+5.6 ± 4.1`` (``±``: half the interval), ``+5.6`` for one seed, ``-`` for none."""
        if self.mean is None:
            return "-"
        mean = f"{scale * self.mean:+.{digits}f}"
        if self.half_width is None:
            return mean
        return f"{mean} ± {scale * self.half_width:.{digits}f}"

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+5.6 ± 4.1, better (n=3)``; ``+0.3 ± 1.5, equal within ±1.8 (n=3)``;
        ``+5.6 (n=1, no verdict)``; ``no shared seeds``. The ``±`` is the smallest difference
        the seeds could detect (:attr:`detectable`)."""
        if self.mean is None:
            return NONE
        if self.bound is None:
            return f"{self.interval(scale, digits)} ({self.label})"
        said = (
            f"equal within ±{scale * self.bound:.{digits}f}" if self.label == SAME else self.label
        )
        return f"{self.interval(scale, digits)}, {said} (n={self.n})"

    def sentence(self, scale: float = 100.0, digits: int = 1, unit: str = "points") -> str:
        """The verdict with what it could resolve, for a verdict line: ``better (+5.6 ± 4.1
        points, n=3; the smallest difference these seeds could detect is 4.1 points)``, and
        for no detectable difference ``no detectable difference (equal within ±1.8 points:
        +0.3 ± 1.5, n=3; ...)``."""
        if self.mean is None:
            return self.label
        if self.detectable is None or self.bound is None:
            return (
                f"{self.label} ({self.interval(scale, digits)} {unit}; one seed has no spread, "
                "so no difference is resolved)"
            )
        resolves = (
            f"n={self.n}; the smallest difference these seeds could detect is "
            f"{scale * self.detectable:.{digits}f} {unit}"
        )
        if self.label == SAME:
            return (
                f"{SAME} (equal within ±{scale * self.bound:.{digits}f} {unit}: "
                f"{self.interval(scale, digits)}, {resolves})"
            )
        return f"{self.label} ({self.interval(scale, digits)} {unit}, {resolves})"

    def to_dict(self) -> dict[str, Any]:
        info = asdict(self)
        info.update(seeds=list(self.seeds), differences=list(self.differences), n=self.n)
        info.update(detectable=self.detectable, bound=self.bound)
        return info


def paired(
    values: Mapping[int, float],
    reference: Mapping[int, float],
    *,
    name: str = "reference",
    level: float = LEVEL,
    resolution: float = 0.0,
) -> Verdict:
    """Compare ``values`` with ``reference`` (both by seed) over the seeds they share.

    Args:
        values: the candidate's metric per seed (higher is better, e.g. top-1).
        reference: the reference's metric per seed.
        name: the reference's label, kept on the verdict.
        level: confidence level of the two-sided interval.
        resolution: the smallest step of the metric; the standard deviation used for the
            interval is at least this (see the module docstring).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    seeds = tuple(sorted(set(values) & set(reference)))
    diffs = tuple(float(values[s]) - float(reference[s]) for s in seeds)
    if not diffs:
        return Verdict(name, (), (), None, None, None, None, level, NONE)
    mean = statistics.fmean(diffs)
    if len(diffs) == 1:
        return Verdict(name, seeds, diffs, mean, None, None, None, level, ONE)
    std = statistics.stdev(diffs)
    n = len(diffs)
    half = t_quantile((1 + level) / 2, n - 1) * max(std, resolution) / math.sqrt(n)
    low, high = mean - half, mean + half
    label = BETTER if low > 0 else WORSE if high < 0 else SAME
    return Verdict(name, seeds, diffs, mean, std, low, high, level, label)


__all__ = ["LABELS", "LEVEL", "Verdict", "paired", "t_quantile"]
