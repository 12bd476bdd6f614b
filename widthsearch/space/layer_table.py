"""The layer table: what the rebuild of a model at new widths needs, as plain data.

:func:`widthsearch.space.realize.realize` hands it to :mod:`widthsearch.space._portable`, and
:mod:`widthsearch.models.native` writes it into the build specs of exported models. Pure data, no
torch: the light modules above build specs without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from widthsearch.space.groups import SpaceView


def layer_table(space: SpaceView, widths: Sequence[int]) -> list[list[Any]]:
    """``[name, kind, in, out, param_dim]`` per layer at ``widths`` (fixed sides: ``None``),
    then ``[module.attr, "attr", value, None, 0]`` per split-size attribute."""
    rows: list[list[Any]] = []
    for lay in space.layers:
        sides = []
        for groups in (lay.in_groups, lay.out_groups):
            fixed = all(space.groups[g].fixed for g in groups)
            sides.append(None if fixed else sum(widths[g] for g in groups))
        rows.append([lay.name, lay.kind, sides[0], sides[1], lay.param_dim])
    for attr in space.size_attrs:
        rows.append([attr.name, "attr", attr.value(widths), None, 0])
    return rows


def family_name(model: nn.Module) -> str:
    """The family whose init :func:`realize` re-runs (a timm model module name)."""
    return type(model).__module__


__all__ = ["family_name", "layer_table"]
