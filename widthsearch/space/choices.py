"""Width grids and ties as data: the widths each group may take, and groups that share one.

A **choice list** is what ``--choices`` reads: multipliers of each group's base width
(``0.25x,0.5x,0.75x,1x``; a group of base ``b`` takes ``round(m * b)``, halves rounded up, never
below 1) or absolute widths (``8,16,24,32``). A **tie** is what one ``--tie`` reads: globs
(``fnmatch``, case-sensitive) over the groups' producer names (``inspect`` lists them); every
free group whose producer matches one of them shares one width with the others. Ties that share
a group merge.

A :class:`GridSpec` holds both as data (a default choice list, per-glob choice lists from a
study file's ``[grid]`` table, ties), goes into width files and studies as a dict
(:meth:`GridSpec.to_dict`), and resolves against a width space to a :class:`WidthLattice`: the
sorted widths of every group, and the decision variables, one per tie class (an untied free
group is a class of one). Groups that no choice list covers keep the divisor grid of
:func:`widthsearch.space.grid.width_grid`. Nothing here solves; :mod:`widthsearch.solve.lattice`
finds the best point of a lattice.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from widthsearch.errors import GridError
from widthsearch.space.grid import MAX_WIDTH_RATIO, width_grid

if TYPE_CHECKING:
    from widthsearch.space.width_space import Group, WidthSpace

_MULT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*x\s*$", re.IGNORECASE)
_INT = re.compile(r"^\s*([0-9]+)\s*$")


@dataclass(frozen=True)
class Choices:
    """One choice list: multipliers of the base width, or absolute widths."""

    kind: Literal["multipliers", "widths"]
    values: tuple[float, ...]
    """Sorted, distinct; integers for ``widths``."""

    @classmethod
    def parse(cls, text: str) -> Choices:
        """``"0.25x,0.5x,0.75x,1x"`` (multipliers) or ``"8,16,24,32"`` (widths).

        Raises:
            GridError: empty, mixed, non-positive or unreadable entries.
        """
        parts = [p for p in str(text).split(",") if p.strip()]
        if not parts:
            raise GridError(
                f"--choices '{text}' is empty; give multipliers (0.25x,0.5x,1x) or widths (8,16,32)"
            )
        mults = [_MULT.match(p) for p in parts]
        ints = [_INT.match(p) for p in parts]
        if all(mults):
            values = [float(m.group(1)) for m in mults if m]
            bad = [v for v in values if not 0 < v <= MAX_WIDTH_RATIO]
            if bad:
                raise GridError(
                    f"--choices multiplier {bad[0]:g}x is outside (0, {MAX_WIDTH_RATIO:g}]; "
                    "give multipliers of the base width such as 0.25x,0.5x,1x"
                )
            return cls("multipliers", tuple(sorted(set(values))))
        if all(ints):
            widths = [int(m.group(1)) for m in ints if m]
            if min(widths) < 1:
                raise GridError(f"--choices '{text}': widths must be positive integers")
            return cls("widths", tuple(float(w) for w in sorted(set(widths))))
        raise GridError(
            f"--choices '{text}' is neither multipliers of the base (0.25x,0.5x,0.75x,1x) nor "
            "widths (8,16,24,32); write every entry the same way"
        )

    def text(self) -> str:
        """The ``--choices`` string this was parsed from (normalized)."""
        if self.kind == "multipliers":
            return ",".join(f"{v:g}x" for v in self.values)
        return ",".join(str(int(v)) for v in self.values)

    def widths_for(
        self, group: Group, *, min_width: float = 0.0, max_width: float = MAX_WIDTH_RATIO
    ) -> tuple[int, ...]:
        """The sorted widths ``group`` may take under this list.

        Multipliers give ``round(m * base)`` each. Absolute widths span a whole network, so
        each group keeps those within its bounds (``[min_width, max_width]`` times its base,
        never above :data:`~widthsearch.space.grid.MAX_WIDTH_RATIO`) that it can build
        (multiples of its ``multiple_of``); :meth:`restricted` says whether any were left out.

        Raises:
            GridError: a multiplier width the group cannot build or above 16x its base, or an
                absolute list that leaves the group no width.
        """
        if self.kind == "multipliers":
            widths = {max(1, math.floor(m * group.width + 0.5)) for m in self.values}
            bad = sorted(w for w in widths if w % group.multiple_of)
            if bad:
                raise GridError(
                    f"group {group.id} ({group.producer}) takes multiples of "
                    f"{group.multiple_of} only, but --choices {self.text()} gives it {bad[0]}; "
                    "choose multipliers that give multiples of it, or absolute widths"
                )
            top = max(widths)
            if top > MAX_WIDTH_RATIO * group.width:
                raise GridError(
                    f"--choices {self.text()} gives group {group.id} ({group.producer}, base "
                    f"{group.width}) width {top}, above {MAX_WIDTH_RATIO:g}x its base; choose "
                    "smaller widths"
                )
            return tuple(sorted(widths))
        lo = min_width * group.width - 1e-9
        hi = min(max_width, MAX_WIDTH_RATIO) * group.width + 1e-9
        kept = sorted(
            w for w in {int(v) for v in self.values} if lo <= w <= hi and not w % group.multiple_of
        )
        if not kept:
            raise GridError(
                f"--choices {self.text()} gives group {group.id} ({group.producer}, base "
                f"{group.width}) no width it can take: between {math.ceil(lo):g} and "
                f"{math.floor(hi):g} (its bounds, {min_width:g}x-{max_width:g}x), a multiple of "
                f"{group.multiple_of}; add such widths, or widen --min-width/--max-width"
            )
        return tuple(kept)

    def restricted(self, group: Group, widths: Sequence[int]) -> bool:
        """Whether ``widths`` (:meth:`widths_for`) left out some of an absolute list."""
        return self.kind == "widths" and len(widths) < len(self.values)


def parse_tie(text: str) -> tuple[str, ...]:
    """One ``--tie``: comma-separated globs over producer names.

    Raises:
        GridError: no glob in it.
    """
    globs = tuple(p.strip() for p in str(text).split(",") if p.strip())
    if not globs:
        raise GridError(f"--tie '{text}' names no group; give globs such as 'layer1.*.conv2'")
    return globs


@dataclass(frozen=True)
class GridSpec:
    """Width grids and ties as data, before they meet a width space."""

    choices: Choices | None = None
    """For every free group no per-glob list covers; None: the divisor grid."""
    groups: tuple[tuple[str, Choices], ...] = ()
    """``(glob, choices)`` per producer glob; the first glob a producer matches wins."""
    ties: tuple[tuple[str, ...], ...] = ()
    """Each tie: globs whose matching groups share one width."""

    @classmethod
    def parse(
        cls,
        choices: str | Choices | None = None,
        tie: str | Sequence[str] = (),
        groups: Mapping[str, str] | None = None,
    ) -> GridSpec:
        """A spec from CLI strings: ``--choices``, ``--tie`` (one or many), per-glob lists.

        Raises:
            GridError: an unreadable choice list or an empty tie.
        """
        if isinstance(choices, str):
            choices = Choices.parse(choices)
        ties = (tie,) if isinstance(tie, str) else tuple(tie)
        return cls(
            choices,
            tuple((glob, Choices.parse(text)) for glob, text in (groups or {}).items()),
            tuple(parse_tie(t) for t in ties),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GridSpec:
        """The spec :meth:`to_dict` wrote (or a study file's ``[grid]`` table)."""
        data = data or {}
        ties = data.get("ties", data.get("tie", ()))
        ties = [ties] if isinstance(ties, str) else ties
        return cls.parse(
            data.get("choices"),
            [t if isinstance(t, str) else ",".join(t) for t in ties],
            data.get("groups"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "choices": None if self.choices is None else self.choices.text(),
            "groups": {glob: c.text() for glob, c in self.groups},
            "ties": [list(t) for t in self.ties],
        }

    @property
    def empty(self) -> bool:
        """No choices and no ties: the divisor grid alone."""
        return self.choices is None and not self.groups and not self.ties

    def describe(self) -> str:
        """One line for messages and reports."""
        parts = []
        if self.choices is not None:
            parts.append(f"choices {self.choices.text()}")
        parts += [f"{glob}: {c.text()}" for glob, c in self.groups]
        parts += [f"tie {','.join(t)}" for t in self.ties]
        return "; ".join(parts) or "divisor grid"

    def resolve(
        self, space: WidthSpace, *, divisor: int = 8, min_width: float, max_width: float
    ) -> WidthLattice:
        """The lattice of ``space`` under this spec. Groups no choice list covers keep the
        divisor grid within ``[min_width, max_width]``; multiplier lists ignore the bounds, and
        absolute lists keep for each group the widths its bounds allow (the lattice's
        ``restricted`` names the groups that lost some).

        Raises:
            GridError: a glob that matches no group (or a fixed one in a tie), a width a group
                cannot take, or tied groups without a common width.
            BoundsError: the divisor grid leaves a group no width.
        """
        for glob, _ in self.groups:
            if not any(fnmatch.fnmatchcase(g.producer, glob) for g in space.free_groups):
                raise GridError(f"[grid] glob '{glob}' matches no free group of {space.model}")
        if self.choices is None:  # some groups may keep the divisor grid
            grid = list(
                width_grid(space, divisor=divisor, min_width=min_width, max_width=max_width)
            )
        else:
            grid = [(g.width,) for g in space.groups]
        restricted = []
        for g in space.free_groups:
            chosen = next(
                (c for glob, c in self.groups if fnmatch.fnmatchcase(g.producer, glob)),
                self.choices,
            )
            if chosen is not None:
                grid[g.id] = chosen.widths_for(g, min_width=min_width, max_width=max_width)
                if chosen.restricted(g, grid[g.id]):
                    restricted.append(g.id)
        classes = _tie_classes(space, self.ties)
        for members in classes:
            common = set(grid[members[0]]).intersection(*(grid[g] for g in members[1:]))
            if not common:
                raise GridError(_tie_clash(space, members, grid))
            for member in members:
                grid[member] = tuple(sorted(common))
        return WidthLattice(tuple(grid), tuple(classes), self, tuple(restricted))


def _tie_clash(space: WidthSpace, members: Sequence[int], grid: Sequence[Sequence[int]]) -> str:
    """Why tied groups cannot share a width: their base widths and grids, and what to do."""
    shown = [space.groups[m] for m in members[:3]]
    names = ", ".join(f"{g.producer} (base {g.width}: {_short(grid[g.id])})" for g in shown)
    more = f" and {len(members) - 3} more" if len(members) > 3 else ""
    bases = sorted({space.groups[m].width for m in members})
    why = (
        "multipliers of different base widths give different widths"
        if len(bases) > 1
        else "their grids differ"
    )
    return (
        f"the tied groups {names}{more} have no width in common ({why}); give absolute widths "
        f"that all of them can take (--choices with widths such as {bases[0]},{bases[-1]}), or "
        "tie only groups of one base width"
    )


def _short(widths: Sequence[int]) -> str:
    return ",".join(map(str, widths)) if len(widths) <= 6 else f"{widths[0]}..{widths[-1]}"


def _tie_classes(space: WidthSpace, ties: Sequence[Sequence[str]]) -> list[tuple[int, ...]]:
    """One tuple of group ids per decision variable: merged ties, then the untied free groups."""
    owner = {g.id: g.id for g in space.free_groups}

    def root(g: int) -> int:
        while owner[g] != g:
            g = owner[g]
        return g

    for tie in ties:
        members = []
        for glob in tie:
            hit = [g for g in space.groups if fnmatch.fnmatchcase(g.producer, glob)]
            fixed = [g for g in hit if g.fixed]
            if fixed:
                raise GridError(
                    f"--tie '{glob}' matches {fixed[0].producer}, a fixed group "
                    f"({fixed[0].width} channels); tie free groups only"
                )
            if not hit:
                raise GridError(
                    f"--tie '{glob}' matches no group of {space.model}; `widthsearch inspect` "
                    "lists the groups' producers"
                )
            members += [g.id for g in hit]
        for g in members[1:]:
            owner[root(g)] = root(members[0])
    by_root: dict[int, list[int]] = {}
    for g in owner:
        by_root.setdefault(root(g), []).append(g)
    return sorted((tuple(sorted(m)) for m in by_root.values()), key=lambda m: m[0])


@dataclass(frozen=True)
class WidthLattice:
    """The widths every group may take and the groups that move together."""

    grid: tuple[tuple[int, ...], ...]
    """Sorted widths per group (a fixed group: its base width only)."""
    classes: tuple[tuple[int, ...], ...]
    """Free group ids per decision variable, ordered by their first group."""
    spec: GridSpec = GridSpec()
    restricted: tuple[int, ...] = ()
    """Free groups an absolute choice list gave only the widths their bounds allow."""

    @property
    def values(self) -> tuple[tuple[int, ...], ...]:
        """The widths each decision variable may take."""
        return tuple(self.grid[c[0]] for c in self.classes)

    @property
    def size(self) -> int:
        """Number of lattice points."""
        return math.prod(len(v) for v in self.values)

    def contains(self, widths: Sequence[int]) -> bool:
        """Whether ``widths`` is a point of the lattice (on every grid, ties equal)."""
        return all(w in self.grid[g] for g, w in enumerate(widths)) and all(
            len({widths[g] for g in c}) == 1 for c in self.classes
        )

    def off_base(self, space: WidthSpace) -> tuple[int, ...]:
        """Free groups whose base width is not on their grid (the base is not a lattice point)."""
        return tuple(g.id for g in space.free_groups if g.width not in self.grid[g.id])

    def describe(self) -> str:
        """One line: variables, points and the spec."""
        tied = sum(1 for c in self.classes if len(c) > 1)
        return (
            f"{len(self.classes)} width variables ({tied} tied sets), {self.size:,} lattice "
            f"points; {self.spec.describe()}"
        )


__all__ = ["Choices", "GridSpec", "WidthLattice", "parse_tie"]
