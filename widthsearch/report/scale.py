"""How big a report's experiment was, so that a smaller one never replaces it unannounced.

A report folder that holds a verification of 4 epochs over 3 seeds must not be overwritten by
a one-step smoke test without the user saying so: the gallery page would then show a ~10% top-1
"verdict". :class:`ReportScale` is what a page records of its experiment (search trials, and
the recipe and seeds of the verification it shows); :func:`read_scale` reads it back from a
folder (from the page's ``widthsearch-scale`` meta tag, or, for pages written before it, from
the page text and ``verify.csv``), and :func:`check_replace` refuses to write a smaller one over
a larger one unless told to.

Example:
    >>> from widthsearch.report.scale import ReportScale
    >>> full = ReportScale(trials=200, verified=True, epochs=4, seeds=3)
    >>> quick = ReportScale(trials=200, verified=True, epochs=4, max_steps=1, seeds=3)
    >>> quick.smaller_than(full)
    ['a quick check (at most 1 steps) where it has a full run']
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from widthsearch.errors import ReportScaleError

META = "widthsearch-scale"
"""The name of the page's meta tag that holds its :class:`ReportScale` as JSON."""
_META = re.compile(r'<meta name="widthsearch-scale" content="([^"]*)">')
_TRIALS = re.compile(r"Search: (\d+) trials")


@dataclass(frozen=True)
class ReportScale:
    """The size of a report's experiment: what a smaller one would lose."""

    trials: int | None = None
    """Finished search trials."""
    verified: bool = False
    """Whether the page shows a verification (training runs)."""
    epochs: int | None = None
    max_steps: int | None = None
    """A quick check's cap on optimizer steps per run (None: no cap)."""
    train_subset: int | None = None
    """A quick check's training subset (None: the whole training split)."""
    seeds: int | None = None

    @classmethod
    def of(cls, trials: int | None, verification: dict[str, Any] | None) -> ReportScale:
        """The scale of a page with ``trials`` search trials (None: not compared) showing
        ``verification`` (a stored verification summary, or None)."""
        if verification is None:
            return cls(trials=trials)
        recipe = verification.get("recipe") or {}
        return cls(
            trials=trials,
            verified=True,
            epochs=recipe.get("epochs"),
            max_steps=recipe.get("max_steps"),
            train_subset=recipe.get("train_subset"),
            seeds=len(verification.get("seeds") or []) or None,
        )

    @property
    def quick(self) -> bool:
        return self.max_steps is not None or self.train_subset is not None

    def quick_words(self) -> str:
        """``at most 1 steps, 64 training images``: what makes it a quick check ('' if none)."""
        parts = [] if self.max_steps is None else [f"at most {self.max_steps} steps"]
        if self.train_subset is not None:
            parts.append(f"{self.train_subset:,} training images")
        return ", ".join(parts)

    def describe(self) -> str:
        """``200 trials; 4 epochs, 3 seeds`` or ``...; quick check: ..., at most 1 steps``."""
        parts = [] if self.trials is None else [f"{self.trials} trials"]
        if not self.verified:
            return "; ".join([*parts, "no verification"])
        run = [f"{self.epochs} epochs"] if self.epochs is not None else []
        run += [f"{self.seeds} seeds"] if self.seeds is not None else []
        run += [self.quick_words()] if self.quick else []
        return "; ".join([*parts, ("quick check: " if self.quick else "") + ", ".join(run)])

    def smaller_than(self, other: ReportScale) -> list[str]:
        """In what this scale falls short of ``other`` (empty: it does not)."""

        def less(a: int | None, b: int | None) -> bool:  # None: unlimited
            return a is not None and (b is None or a < b)

        out = []
        if other.trials is not None and self.trials is not None and self.trials < other.trials:
            out.append(f"{self.trials} search trials where it has {other.trials}")
        if other.verified and not self.verified:
            out.append("no verification where it has one")
        if not (other.verified and self.verified):
            return out
        if self.quick and not other.quick:
            out.append(f"a quick check ({self.quick_words()}) where it has a full run")
        else:
            if less(self.max_steps, other.max_steps):
                out.append(
                    f"at most {self.max_steps} steps where it has {other.max_steps or 'all'}"
                )
            if less(self.train_subset, other.train_subset):
                out.append(f"{self.train_subset:,} training images where it has more")
        if less(self.epochs, other.epochs):
            out.append(f"{self.epochs} epochs where it has {other.epochs}")
        if less(self.seeds, other.seeds):
            out.append(f"{self.seeds} seeds where it has {other.seeds}")
        return out

    def meta(self) -> str:
        """The page's meta tag that records this scale."""
        data = html.escape(json.dumps(asdict(self), sort_keys=True), quote=True)
        return f'<meta name="{META}" content="{data}">'


def read_scale(folder: str | os.PathLike[str]) -> ReportScale | None:
    """The scale of the report in ``folder``; None where there is no report.

    Pages written before the meta tag existed are read from their text (the trials) and their
    ``verify.csv`` (the recipe and seeds of its runs), where ``run`` wrote one.
    """
    folder = Path(folder)
    page = folder / "index.html"
    if not page.is_file():
        return None
    text = page.read_text(errors="replace")
    tag = _META.search(text)
    if tag:
        try:
            data = json.loads(html.unescape(tag.group(1)))
            return ReportScale(**{k: data.get(k) for k in ReportScale.__dataclass_fields__})
        except (ValueError, TypeError):
            pass  # a damaged tag: read the page as one written before it
    trials = _TRIALS.search(text)
    n = int(trials.group(1)) if trials else None
    return _legacy_verification(folder / "verify.csv", n)


def _legacy_verification(path: Path, trials: int | None) -> ReportScale:
    """The scale of an older page from its ``verify.csv``: the largest recipe of its runs."""
    if not path.is_file():
        return ReportScale(trials=trials)
    best: ReportScale | None = None
    seeds: dict[str, set[str]] = {}
    recipes: dict[str, dict[str, Any]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            key = row.get("recipe_key") or ""
            try:
                recipes[key] = json.loads(row.get("recipe") or "{}")
            except ValueError:
                continue
            seeds.setdefault(key, set()).add(row.get("seed") or "")
    for key, recipe in recipes.items():
        scale = ReportScale.of(trials or 0, {"recipe": recipe, "seeds": sorted(seeds[key])})
        if best is None or best.smaller_than(scale):
            best = scale
    if best is None:
        return ReportScale(trials=trials)
    return ReportScale(**{**asdict(best), "trials": trials})


def check_replace(
    folder: str | os.PathLike[str], new: ReportScale, *, replace: bool = False
) -> None:
    """Refuse to write a report of scale ``new`` over a larger one in ``folder``.

    Raises:
        ReportScaleError: ``folder`` holds a report of a larger scale and ``replace`` is
            False; the message says how they differ and how to go on.
    """
    old = read_scale(folder)
    if replace or old is None:
        return
    short = new.smaller_than(old)
    if short:
        text = (
            f"{folder} holds a larger report ({old.describe()}) than this one would be "
            f"({'; '.join(short)}); write it to {{output}}, or give {{replace}} to replace it"
        )
        raise ReportScaleError(options=text)


__all__ = ["META", "ReportScale", "check_replace", "read_scale"]
