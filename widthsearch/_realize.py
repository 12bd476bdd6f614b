"""Realize a width space at new widths: the generic path of design.md section 4.

The model keeps its classes and its forward code; only the channel counts of its
Conv/Norm/Linear modules (and loose per-channel parameters such as ConvNeXt's layer scale)
change, and the family's own init runs again. The rebuilding itself lives in
:mod:`widthsearch._portable`, which exported model files carry too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from . import _portable
from .errors import UnsupportedModelError

if TYPE_CHECKING:
    from .space import Layer, WidthSpace


def check_resizable(model: nn.Module, layers: Sequence[Layer]) -> None:
    """Fail at analysis time, not at realization, on a module we do not know how to resize."""
    wanted = {
        "conv": nn.Conv2d,
        "depthwise": nn.Conv2d,
        "grouped": nn.Conv2d,
        "linear": nn.Linear,
        "norm": _portable._NORMS,
    }
    for layer in layers:
        if layer.kind == "scale":
            continue
        module = model.get_submodule(layer.name)
        if not isinstance(module, wanted[layer.kind]):
            raise UnsupportedModelError(
                f"cannot resize module '{layer.name}' of type {type(module).__name__}: it runs a "
                f"{layer.kind} op but is not a torch.nn Conv2d/Linear/BatchNorm/LayerNorm/GroupNorm"
            )


def layer_table(space: WidthSpace, widths: Sequence[int]) -> list[list]:
    """``[name, kind, in, out, param_dim]`` per layer at ``widths`` (fixed sides: ``None``)."""
    rows = []
    for lay in space.layers:
        sides = []
        for groups in (lay.in_groups, lay.out_groups):
            fixed = all(space.groups[g].fixed for g in groups)
            sides.append(None if fixed else sum(widths[g] for g in groups))
        rows.append([lay.name, lay.kind, sides[0], sides[1], lay.param_dim])
    return rows


def family_name(model: nn.Module) -> str:
    """The family whose init :func:`realize` re-runs (a timm model module name)."""
    return type(model).__module__


def realize(model: nn.Module, space: WidthSpace, widths: Sequence[int]) -> nn.Module:
    """Resize ``model`` (a fresh base model of ``space``) to ``widths`` in place and return it."""
    table = layer_table(space, widths)
    return _portable.rebuild(model, table, dict(space.timm_kwargs), family_name(model))
