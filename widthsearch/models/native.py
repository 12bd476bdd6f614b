"""Build specs: how timm itself constructs a model at new widths (see
:mod:`widthsearch.space._portable`).

For the families timm builds from block definitions, the widths go into timm's own builder:
EfficientNet and MobileNetV2 (``timm.models.efficientnet``) and MobileNetV3 get their stem, each
block's output, expansion and squeeze-excite widths and their head as block arguments; ResNet
gets its stage ``channels``. Whatever the builder cannot express (a ResNet stem or bottleneck
width, an expansion width that timm's ``make_divisible`` would round) is rebuilt by the generic
path, so every spec builds the same weight shapes as :meth:`WidthSpace.realize`. A spec is
checked by building it once: where timm's builder cannot take the widths after all (an entrypoint
that does not go through the builder, a block type the builder does not describe, an assertion
in timm), the spec falls back to the generic path rather than fail or build another model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from widthsearch.space.layer_table import family_name, layer_table

if TYPE_CHECKING:
    from torch import nn

    from widthsearch.space.width_space import WidthSpace

SPEC_VERSION = 1


def build_spec(space: WidthSpace, widths: Sequence[int], name: str | None = None) -> dict[str, Any]:
    """The JSON-ready build spec of ``space`` at ``widths`` (checked).

    ``name`` is what the built model calls itself in its ``pretrained_cfg`` (the exported
    entrypoint; default ``<model>_ws``).
    """
    widths = space.widths(widths)
    ref = space.ref
    base = space.realize()  # a fresh base model, to read block types and skips off
    family = family_name(base)
    native, kind = None, None
    if not ref.is_timm or space.size_attrs:
        pass  # a user's factory, or timm's own split sizes: the generic path
    elif family in ("timm.models.efficientnet", "timm.models.mobilenetv3"):
        native = _effnet_native(space, widths, base)
        kind = "efficientnet" if family.endswith("efficientnet") else "mobilenetv3"
    elif family == "timm.models.resnet":
        native, kind = _resnet_native(space, widths, base), "resnet"
    spec = {
        "spec_version": SPEC_VERSION,
        "name": name or f"{ref.slug}_ws",
        "base": space.model,
        "input_size": list(space.input_size),
        "timm_kwargs": dict(space.timm_kwargs),
        "init_family": family,
        "family": kind if native is not None else None,
        "native": native,
        "layers": layer_table(space, widths),
    }
    if not ref.is_timm:
        spec["source"] = ref.source()
    generic = space.realize(widths)
    if native is not None and not _builds_like(spec, generic):
        spec.update(family=None, native=None)
    return spec


def _builds_like(spec: dict[str, Any], reference: nn.Module) -> bool:
    """True if timm's builder makes ``spec`` into a model with ``reference``'s weight shapes.

    The native part is derived from how timm's builders behave today (which entrypoint goes
    through ``_create_mnv3``, how a block derives its groups). Where a builder cannot express
    the widths (hardcorenas builds MobileNetV3 directly; a width timm would round; an
    assertion), the generic rebuild takes over, so every spec builds what the space predicts.
    """
    from widthsearch.space import _portable

    try:
        built = _portable.build(spec)
    except Exception:  # any failure of timm's builder means: not native
        return False
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    return type(built) is type(reference) and shapes == {
        k: tuple(v.shape) for k, v in built.state_dict().items()
    }


def _out_width(space: WidthSpace, widths: Sequence[int]):
    outs = {lay.name: lay.out_groups for lay in space.layers}

    def width(name: str) -> int | None:
        groups = outs.get(name)
        return None if groups is None else sum(widths[g] for g in groups)

    return width


def _effnet_native(space: WidthSpace, widths: Sequence[int], model: nn.Module) -> dict | None:
    """Stem, per-block and head widths for timm's EfficientNet builder, or None."""
    from timm.layers import make_divisible

    width = _out_width(space, widths)
    stem = width("conv_stem")
    blocks = getattr(model, "blocks", None)
    if stem is None or blocks is None:
        return None
    last = {
        "DepthwiseSeparableConv": "conv_pw",
        "InvertedResidual": "conv_pwl",
        "EdgeResidual": "conv_pwl",
        "ConvBnAct": "conv",
    }
    expand = {"InvertedResidual": "conv_pw", "EdgeResidual": "conv_exp"}
    convs = {  # block -> groups count of its grouped conv (not depthwise, not dense)
        lay.name.rsplit(".", 1)[0]: lay.groups for lay in space.layers if lay.kind == "grouped"
    }
    stages, in_chs = [], stem
    for s, stage in enumerate(blocks):
        row = []
        for i, block in enumerate(stage):
            prefix, cls = f"blocks.{s}.{i}", type(block).__name__
            if cls not in last or getattr(block, "force_in_chs", None):
                return None  # CondConv, UIR, attention blocks: generic path
            entry: dict[str, Any] = {"in": in_chs, "out": width(f"{prefix}.{last[cls]}")}
            if entry["out"] is None:
                return None  # not one conv (MixedConv2d): generic path
            if cls in expand:
                mid = width(f"{prefix}.{expand[cls]}")
                if mid is None:
                    return None
                if make_divisible(in_chs * (mid / in_chs)) != mid:
                    return None  # timm would round this expansion width
                entry["mid"] = mid
            grouped = convs.get(prefix)
            if grouped is not None:  # timm derives groups from a group size: keep the count
                entry["group_size"] = entry.get("mid", in_chs) // grouped
            rd = width(f"{prefix}.se.conv_reduce")
            if rd is not None:
                entry["rd"] = rd
            if cls != "ConvBnAct" and not block.has_skip:
                entry["noskip"] = True  # equal widths must not grow a skip timm's base lacks
            row.append(entry)
            in_chs = entry["out"]
        stages.append(row)
    return {"stem": stem, "head": width("conv_head"), "blocks": stages}


def _resnet_native(space: WidthSpace, widths: Sequence[int], model: nn.Module) -> dict | None:
    """Stage ``channels`` for timm's ResNet, or None where its downsampling would differ."""
    width = _out_width(space, widths)
    stages: list[Any] = [getattr(model, f"layer{s}", None) for s in range(1, 5)]
    if any(stage is None for stage in stages):
        return None
    from timm.models.resnet import BasicBlock, Bottleneck

    if any(type(b) not in (BasicBlock, Bottleneck) for stage in stages for b in stage):
        return None  # ResNeSt, SE-ResNet variants with other blocks: generic path
    channels = []
    inplanes = stages[0][0].conv1.in_channels  # the stem width timm fixes (64, deep: 2x)
    for s, stage in enumerate(stages, 1):
        block = stage[0]
        last = "conv3" if hasattr(block, "conv3") else "conv2"
        out = width(f"layer{s}.0.{last}")
        expansion = type(block).expansion
        if out is None or out % expansion:
            return None
        stride = block.conv2.stride[0] if hasattr(block, "conv3") else block.conv1.stride[0]
        native_down = stride != 1 or inplanes != out
        if native_down != (block.downsample is not None):
            return None  # timm would add or drop a downsample the base does not have
        channels.append(out // expansion)
        inplanes = out
    return {"channels": channels}


__all__ = ["SPEC_VERSION", "build_spec"]
