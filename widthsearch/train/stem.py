"""Stem policies: what verification does about ImageNet stems on small images.

timm's CNNs are built for 224x224: their stems downsample 4x before the first block (ResNet's
strided 7x7 conv and max pool, EfficientNet's strided stem and first strided stage), so a
32x32 CIFAR image reaches the first stage at 8x8 and the last at 1x1, and the networks train
far below what the same architecture reaches with a CIFAR stem (one known report: timm's
ResNet-34 at 59.8% on CIFAR-100 against 75.9% for a CIFAR-style ResNet).

Policies (``--stem``):

- ``timm``: the model as timm builds it.
- ``cifar``: the first 4x of downsampling removed: the strided convolutions and poolings that
  act at the input's resolution, then at the next one, get stride 1 until the feature maps
  are 4x larger, as CIFAR ResNets are built (ResNet: ``conv1`` and ``maxpool``; EfficientNet:
  ``conv_stem`` and the first strided depthwise conv). Channels are untouched, so the width
  space is the same; MACs grow with the larger maps and are counted on the changed model.

A policy applies to every candidate, the base and the control alike, and is part of the
recipe that identifies a result. A model whose forward breaks under the policy (a shortcut
pooled differently from its branch, say) is refused with one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from widthsearch.errors import StemError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import nn

    _Strided = nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d
    """The layers whose stride the ``cifar`` policy sets to 1."""

POLICIES = ("timm", "cifar")
DEFAULT_POLICY = "timm"
CIFAR_FACTOR = 4
"""How much downsampling the ``cifar`` policy removes, per side."""


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise StemError(f"unknown stem policy '{policy}'; use {', '.join(POLICIES)}")
    return policy


def _strided(model: nn.Module, input_size: Sequence[int]) -> list[tuple[_Strided, int, int]]:
    """(module, input side, output side) of every strided conv and pooling, in forward order."""
    import torch
    from torch import nn

    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    seen: list[tuple[_Strided, int, int]] = []

    def hook(module, args, out):
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
        if max(stride) > 1:
            seen.append((module, int(args[0].shape[-1]), int(out.shape[-1])))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def apply_stem(model: nn.Module, policy: str, input_size: Sequence[int]) -> nn.Module:
    """``model`` with the stem ``policy`` applied in place (see the module docstring)."""
    check_policy(policy)
    if policy == "timm":
        return model
    removed: float = 1
    try:
        while removed < CIFAR_FACTOR:
            strided = _strided(model, input_size)
            if not strided:
                break
            level = strided[0][1]  # the first resolution at which the model downsamples
            for module, side_in, side_out in strided:
                if side_in != level:
                    continue
                module.stride = (1, 1) if isinstance(module.stride, tuple) else 1
                removed_here = side_in / max(side_out, 1)
            removed *= removed_here
        _strided(model, input_size)  # the changed model must still run
    except StemError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StemError(
            f"--stem {policy} breaks this model ({type(exc).__name__}: {first}); use --stem timm"
        ) from None
    return model


__all__ = ["CIFAR_FACTOR", "DEFAULT_POLICY", "POLICIES", "StemError", "apply_stem", "check_policy"]
