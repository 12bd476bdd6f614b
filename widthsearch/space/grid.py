"""The widths a channel group may take: multiplier bounds and the grid of allowed widths.

Each free group gets a grid of allowed widths: multiples of ``step = lcm(divisor, multiple_of)``
(8 by default: fast on real hardware, and buildable for grouped convs) between ``min_width`` and
``max_width`` times its base width, never below one step, plus its base width (always buildable)
when the bounds contain 1. Every grid width is within the bounds; bounds that leave a group no
width are refused with the ``--max-width`` or ``--divisor`` that would give every group one.

A width-space concept, below the solver: :mod:`widthsearch.solve.rounding` rounds solutions onto
the grid, and the latency profiler (:mod:`widthsearch.hardware.profiling`) draws its random width
vectors on it. Both :mod:`widthsearch.solve.rounding` and :mod:`widthsearch.solve` re-export
these names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from widthsearch.errors import BoundsError, WidthSearchError

if TYPE_CHECKING:
    from widthsearch.space.width_space import Group, WidthSpace

MAX_WIDTH_RATIO = 16.0
"""No group grows beyond 16x its base width: the largest ``max_width`` any solve accepts, and the
largest width a width file may hold. Wider is not a width search any more but a model of another
size class (a 16x group already multiplies its layers' weights by up to 256)."""

_EPS = 1e-9


def check_bounds(min_width: float, max_width: float) -> None:
    """Fail unless ``0 < min_width <= max_width <= MAX_WIDTH_RATIO`` (finite numbers).

    Raises:
        BoundsError: the bounds are empty, not positive, or beyond :data:`MAX_WIDTH_RATIO`.
    """
    if not (math.isfinite(min_width) and math.isfinite(max_width)):
        raise BoundsError(
            options=f"width bounds must be finite numbers, got {{min_width}}={min_width:g} and "
            f"{{max_width}}={max_width:g}"
        )
    if not 0 < min_width <= max_width:
        raise BoundsError(
            options=f"width bounds must satisfy 0 < {{min_width}} ({min_width:g}) <= "
            f"{{max_width}} ({max_width:g}); lower {{min_width}} or raise {{max_width}}"
        )
    if max_width > MAX_WIDTH_RATIO:
        raise BoundsError(
            options=f"{{max_width}}={max_width:g} is above {MAX_WIDTH_RATIO:g}, the widest "
            "multiple of a group's base width widthsearch builds; lower {max_width}"
        )


def _allowed(width: int, step: int, min_width: float, max_width: float) -> tuple[int, ...]:
    """A free group's grid: multiples of ``step`` in [min_width, max_width] x ``width`` (at least
    one step), and ``width`` itself when the bounds contain 1."""
    low = max(step, math.ceil(min_width * width / step - _EPS) * step)
    cap = math.floor(max_width * width + _EPS)
    values = set(range(low, cap + 1, step))
    if min_width <= 1 + _EPS and max_width >= 1 - _EPS:
        values.add(width)
    return tuple(sorted(values))


def width_grid(
    space: WidthSpace, *, divisor: int, min_width: float, max_width: float
) -> tuple[tuple[int, ...], ...]:
    """Allowed widths per group (sorted); a fixed group allows only its base width.

    A free group allows the multiples of ``lcm(divisor, multiple_of)`` from ``min_width`` to
    ``max_width`` times its base width (never below one step), and its base width (always
    buildable) when ``min_width <= 1 <= max_width``. Every width on the grid is within the
    bounds, so rounding, repair and fill cannot leave them.

    Raises:
        BoundsError: empty bounds, or a group with no allowed width; the message names the
            ``--max-width`` or ``--divisor`` that would give every group one.
    """
    if divisor < 1:
        raise WidthSearchError(f"divisor must be a positive integer, got {divisor}")
    check_bounds(min_width, max_width)
    grids: list[tuple[int, ...]] = []
    empty: list[Group] = []
    for g in space.groups:
        if g.fixed:
            grids.append((g.width,))
            continue
        values = _allowed(g.width, math.lcm(divisor, g.multiple_of), min_width, max_width)
        if not values:
            empty.append(g)
        grids.append(values)
    if empty:
        raise BoundsError(options=_empty_grid_message(space, empty, divisor, min_width, max_width))
    return tuple(grids)


def _empty_grid_message(
    space: WidthSpace, empty: Sequence[Group], divisor: int, min_width: float, max_width: float
) -> str:
    """Which groups have no width within the bounds, and what would give every group one."""
    g = empty[0]
    step = math.lcm(divisor, g.multiple_of)
    many = f"{len(empty)} channel groups" if len(empty) > 1 else "channel group"
    lines = (
        f"the width bounds {min_width:g}x-{max_width:g}x leave {many} without a width on the "
        f"multiple-of-{divisor} grid (e.g. group {g.id}, {g.producer}: {g.width} channels, so "
        f"{min_width * g.width:.3g}-{max_width * g.width:.3g}, no multiple of {step})"
    )
    fixes = []
    # the smallest --max-width that gives each empty group its smallest multiple, or its base
    need = 0.0
    for h in empty:
        low = max(step, math.ceil(min_width * h.width / step - _EPS) * step)
        options = [low / h.width] + ([1.0] if min_width <= 1 else [])
        need = max(need, min(options))
    need = math.ceil(need * 100 - _EPS) / 100
    if max_width < need <= MAX_WIDTH_RATIO:
        fixes.append(f"raise {{max_width}} to {need:g}")
    for d in range(divisor - 1, 0, -1):
        if all(
            h.fixed or _allowed(h.width, math.lcm(d, h.multiple_of), min_width, max_width)
            for h in space.groups
        ):
            fixes.append(f"lower {{divisor}} to {d}")
            break
    if not fixes:
        fixes.append("widen the bounds")
    return f"{lines}; {' or '.join(fixes)}"


def nearest(grid: Sequence[int], target: float) -> int:
    """The grid width closest to ``target`` (ties go down)."""
    return min(grid, key=lambda w: (abs(w - target), w))


__all__ = ["MAX_WIDTH_RATIO", "check_bounds", "nearest", "width_grid"]
