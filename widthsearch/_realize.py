"""Rebuild a model's layers at new widths, then re-run its family's own weight init.

The generic path of design.md section 4: the model keeps its classes and its forward code; only
the channel counts of its Conv/Norm/Linear modules (and loose per-channel parameters such as
ConvNeXt's layer scale) change. At initialization nothing is learned, so nothing is lost.

Initialization follows the family: a resized parameter whose values were all equal (BN weights,
zero-initialized last BN gammas, layer-scale gammas) keeps that value; the others are drawn by
the family's init function (``_FAMILY_INITS``), or by PyTorch's default init for families that
have none registered here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import UnsupportedModelError

if TYPE_CHECKING:
    from .space import Layer, WidthSpace

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def check_resizable(model: nn.Module, layers: Sequence[Layer]) -> None:
    """Fail at analysis time, not at realization, on a module we do not know how to resize."""
    wanted = {
        "conv": nn.Conv2d,
        "depthwise": nn.Conv2d,
        "grouped": nn.Conv2d,
        "linear": nn.Linear,
        "norm": _NORMS,
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


def realize(model: nn.Module, space: WidthSpace, widths: Sequence[int]) -> nn.Module:
    """Resize ``model`` (a fresh base model of ``space``) to ``widths`` in place and return it."""
    changed = False
    for layer in space.layers:
        n_in = sum(widths[g] for g in layer.in_groups)
        n_out = sum(widths[g] for g in layer.out_groups)
        base_in = sum(space.groups[g].width for g in layer.in_groups)
        base_out = sum(space.groups[g].width for g in layer.out_groups)
        if (n_in, n_out) == (base_in, base_out):
            continue
        changed = True
        if layer.kind == "scale":
            _resize_loose(model, layer, n_in)
        else:
            _RESIZERS[layer.kind](model.get_submodule(layer.name), layer, n_in, n_out)
    if changed:
        _family_init(model, space.timm_kwargs)
        _sync_head_attrs(model, space, widths)
    return model


# ---------------------------------------------------------------------- resizing
def _new_param(old: torch.Tensor | None, shape: Sequence[int]) -> nn.Parameter | None:
    if old is None:
        return None
    return nn.Parameter(
        torch.empty(*shape, dtype=old.dtype, device=old.device), requires_grad=old.requires_grad
    )


def _constant(t: torch.Tensor | None) -> float | None:
    """The single value of ``t`` if all its entries are equal, else None."""
    if t is None or t.numel() == 0:
        return None
    flat = t.detach().reshape(-1)
    return float(flat[0]) if bool((flat == flat[0]).all()) else None


def _swap(module: nn.Module, attrs: Mapping[str, Sequence[int]], reset: Callable[[], None]) -> None:
    """Replace parameters by new shapes, reset them, then restore the ones that were constant."""
    constants = {a: _constant(getattr(module, a)) for a in attrs}
    for a, shape in attrs.items():
        setattr(module, a, _new_param(getattr(module, a), shape))
    reset()
    with torch.no_grad():
        for a, value in constants.items():
            if value is not None and getattr(module, a) is not None:
                getattr(module, a).fill_(value)


def _resize_conv(m: nn.Conv2d, layer: Layer, n_in: int, n_out: int) -> None:
    m.in_channels, m.out_channels = n_in, n_out
    if layer.kind == "depthwise":
        m.groups = n_out
    shapes = {"weight": (n_out, n_in // m.groups, *m.kernel_size), "bias": (n_out,)}
    _swap(m, shapes, m.reset_parameters)


def _resize_linear(m: nn.Linear, layer: Layer, n_in: int, n_out: int) -> None:
    m.in_features, m.out_features = n_in, n_out
    _swap(m, {"weight": (n_out, n_in), "bias": (n_out,)}, m.reset_parameters)


def _resize_norm(m: nn.Module, layer: Layer, n: int, _n_out: int) -> None:
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        m.num_features = n
        if m.running_mean is not None:
            m.running_mean = torch.zeros(
                n, dtype=m.running_mean.dtype, device=m.running_mean.device
            )
            m.running_var = torch.ones(n, dtype=m.running_var.dtype, device=m.running_var.device)
    elif isinstance(m, nn.LayerNorm):
        m.normalized_shape = (n,)
    else:
        m.num_channels = n
    _swap(m, {"weight": (n,), "bias": (n,)}, m.reset_parameters)


def _resize_loose(model: nn.Module, layer: Layer, n: int) -> None:
    module_name, _, attr = layer.name.rpartition(".")
    module = model.get_submodule(module_name)
    old = getattr(module, attr)
    shape = list(old.shape)
    shape[layer.param_dim] = n
    value = _constant(old)
    with torch.no_grad():
        if value is not None:
            new = torch.full(shape, value, dtype=old.dtype, device=old.device)
        else:  # redraw from the values the family init produced
            pick = torch.randint(old.numel(), (math.prod(shape),), device=old.device)
            new = old.detach().reshape(-1)[pick].reshape(shape).clone()
    setattr(module, attr, nn.Parameter(new, requires_grad=old.requires_grad))


_RESIZERS: dict[str, Callable[[Any, Layer, int, int], None]] = {
    "conv": _resize_conv,
    "depthwise": _resize_conv,
    "grouped": _resize_conv,
    "linear": _resize_linear,
    "norm": _resize_norm,
}


def _sync_head_attrs(model: nn.Module, space: WidthSpace, widths: Sequence[int]) -> None:
    """Keep timm's ``num_features`` / ``head_hidden_size`` in step with the resized head."""
    heads = [
        lay
        for lay in space.layers
        if lay.kind == "linear" and all(space.groups[g].fixed for g in lay.out_groups)
    ]
    if not heads:
        return
    head = heads[-1]
    old = sum(space.groups[g].width for g in head.in_groups)
    new = sum(widths[g] for g in head.in_groups)
    for attr in ("num_features", "head_hidden_size"):
        if getattr(model, attr, None) == old:
            setattr(model, attr, new)


# ---------------------------------------------------------------------- family inits
def _init_efficientnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    from timm.models._efficientnet_builder import efficientnet_init_weights

    efficientnet_init_weights(model)


def _init_resnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    model.init_weights(zero_init_last=kwargs.get("zero_init_last", True))


def _init_regnet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    from timm.models import regnet
    from timm.models._manipulate import named_apply

    zero_init_last = kwargs.get("zero_init_last", True)
    named_apply(partial(regnet._init_weights, zero_init_last=zero_init_last), model)


def _init_convnext(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    from timm.models import convnext
    from timm.models._manipulate import named_apply

    scale = kwargs.get("head_init_scale", 1.0)
    named_apply(partial(convnext._init_weights, head_init_scale=scale), model)


def _init_densenet(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    for m in model.modules():  # as timm.models.densenet.DenseNet.__init__
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, 0)


_FAMILY_INITS: dict[str, Callable[[nn.Module, Mapping[str, Any]], None]] = {
    "timm.models.efficientnet": _init_efficientnet,
    "timm.models.mobilenetv3": _init_efficientnet,
    "timm.models.resnet": _init_resnet,
    "timm.models.regnet": _init_regnet,
    "timm.models.convnext": _init_convnext,
    "timm.models.densenet": _init_densenet,
}


def family_init_name(model: nn.Module) -> str:
    """Which init :func:`realize` re-runs for this model (``"pytorch-default"`` if none)."""
    module = type(model).__module__
    return module if module in _FAMILY_INITS else "pytorch-default"


def _family_init(model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    init = _FAMILY_INITS.get(type(model).__module__)
    if init is not None:
        init(model, kwargs)
