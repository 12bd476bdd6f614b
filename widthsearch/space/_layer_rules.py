"""Per-op rules for the ops that carry weights: each records a layer over channel nodes.

Convolutions (dense, grouped, depthwise; a fixed filter from a buffer; a one-channel Conv1d
along the channels), linear layers, norms and the matmul that pools each channel over positions.
Every rule takes the tracer, the op's output and the op's own arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from widthsearch.space._records import Label, RawLayer
from widthsearch.space._tracer_base import TracerBase


def _conv2d(
    tr: TracerBase, out, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
):
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    if wname is None:
        if id(weight) in tr._bview:
            _filter(tr, out, input, weight, groups)
            return
        raise tr.fail("conv2d weight is computed in a way widthsearch cannot follow")
    module = tr.split_name(wname)[0]
    tr.once(module)
    lab = tr.label_or_fixed(input, 1)
    if lab.dim != 1:
        raise tr.fail(f"conv2d input has its channels at dim {lab.dim}")
    c_in, c_out = input.shape[1], out.shape[1]
    cpg = c_in // groups
    if groups == 1:
        kind, out_segs = "conv", (tr.uf.add(c_out),)
    elif cpg == 1:  # depthwise: each input channel gives c_out / c_in output channels
        kind, out_segs = "depthwise", _multiplied(tr, lab, c_in, c_out, module)
    else:  # grouped: the number of groups stays, input and output widths are free multiples of it
        kind, out_segs = "grouped", (tr.uf.add(c_out),)
        tr.uf.require_multiple(lab.segs, groups, f"grouped conv '{module}'")
        tr.uf.require_multiple(out_segs, groups, f"grouped conv '{module}'")
    params = tr.take_params(weight=wname, bias=bname)
    tr.add_layer(
        RawLayer(
            name=module,
            kind=kind,
            in_segs=lab.segs,
            out_segs=out_segs,
            params=params,
            kernel=tuple(weight.shape[2:]),
            groups=groups,
            channels_per_group=cpg,
            positions=out.numel() // c_out,
            out_size=tuple(out.shape[2:]),
        )
    )
    if weight is not tr._params[wname]:  # weight standardization: computed from `weight`
        _per_channel_params(tr, module, c_out, out_segs)
    tr.set_label(out, Label(1, out_segs))


def _multiplied(tr: TracerBase, lab: Label, c_in: int, c_out: int, module: str):
    """Output segments of a depthwise conv: each input segment, ``c_out / c_in`` times."""
    if c_out % c_in:
        raise tr.fail(f"depthwise conv '{module}' maps {c_in} channels to {c_out}")
    m = c_out // c_in
    return tuple(s for s in lab.segs for _ in range(m))


def _per_channel_params(tr: TracerBase, module: str, c_out: int, out_segs) -> None:
    """Parameters of a conv that computes its weight (``ScaledStdConv2d``'s ``gain``) with one
    entry per output channel follow the output width."""
    prefix = f"{module}." if module else ""
    for pname, p in tr._params.items():
        if not pname.startswith(prefix) or "." in pname[len(prefix) :]:
            continue
        if pname in tr._consumed_now or p.numel() != c_out or c_out == 1:
            continue
        tr._scale(pname, out_segs, c_out)


def _filter(tr: TracerBase, out, input, weight, groups: int) -> None:
    """A conv with a fixed filter from a buffer (``BlurPool2d``): a depthwise op without
    parameters, whose buffer (one copy of the filter per channel) follows the width."""
    bname = tr._bview[id(weight)]
    module = tr.split_name(bname)[0]
    tr.once(module)
    lab = tr.label_or_fixed(input, 1)
    c_in, c_out = input.shape[1], out.shape[1]
    if lab.dim != 1 or groups != c_in:
        raise tr.fail(f"conv2d with the fixed weight '{bname}' is not a depthwise filter")
    out_segs = _multiplied(tr, lab, c_in, c_out, module)
    buffer = tr._buffers[bname]
    params = {}
    if buffer.shape[0] == c_out > 1:  # one filter per channel: the buffer is resized
        if not bool((buffer == buffer[:1]).all()):
            tr.uf.fix(lab.segs, f"fixed: the filters of '{bname}' differ per channel")
        params["buffer"] = tr.split_name(bname)[1]
    elif buffer.shape[0] != 1:
        tr.uf.fix(lab.segs, f"fixed: the filter '{bname}' has a constant number of channels")
    tr.add_layer(
        RawLayer(
            name=bname,
            kind="filter",
            in_segs=lab.segs,
            out_segs=out_segs,
            params=params,
            kernel=tuple(weight.shape[2:]),
            groups=groups,
            positions=out.numel() // c_out,
            out_size=tuple(out.shape[2:]),
        )
    )
    tr.set_label(out, Label(1, out_segs))


def _conv1d(tr: TracerBase, out, input, weight, bias=None, stride=1, padding=0, *a, **k):
    """A 1-channel Conv1d that slides along the channel axis (ECA attention): its parameters
    do not depend on the width, its MACs grow with it, and its output keeps the channels."""
    lab = tr.label(input)
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    if (
        lab is None
        or wname is None
        or lab.dim != input.ndim - 1
        or tuple(weight.shape[:2]) != (1, 1)
        or out.shape[-1] != input.shape[-1]
    ):
        raise tr.fail("'conv1d' is modelled only as a one-channel conv along the channel axis")
    module = tr.split_name(wname)[0]
    tr.once(module)
    params = tr.take_params(weight=wname, bias=bname)
    tr.add_layer(
        RawLayer(
            name=module,
            kind="chanconv",
            in_segs=lab.segs,
            out_segs=lab.segs,
            params=params,
            kernel=tuple(weight.shape[2:]),
            positions=out.numel() // out.shape[-1],
            constant=weight.numel() + (bias.numel() if bias is not None else 0),
        )
    )
    tr.set_label(out, Label(out.ndim - 1, lab.segs))


def pooling_matmul(tr: TracerBase, out, a, b, **kwargs) -> bool:
    """``x @ w`` that pools a channel tensor over positions with weights no channel reaches
    (GlobalContext's attention pooling: ``(B, 1, C, HW) @ (B, 1, HW, 1)``): the channels are
    the rows of ``a`` (or the columns of ``b``) and the product keeps them, so it is a layer
    without parameters whose MACs grow with the width (kind ``pool``). False for any other
    matmul (attention, a linear layer by matmul), which the caller refuses."""
    if kwargs or not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return False
    if a.ndim < 2 or b.ndim < 2 or out.ndim < 2:
        return False
    la, lb = tr.label(a), tr.label(b)
    if la is not None and la.dim == a.ndim - 2 and (lb is None or lb.dim < b.ndim - 2):
        lab, other, olab, dim = la, b, lb, out.ndim - 2
    elif lb is not None and lb.dim == b.ndim - 1 and (la is None or la.dim < a.ndim - 2):
        lab, other, olab, dim = lb, a, la, out.ndim - 1
    else:
        return False
    if id(other) in tr._pview or id(other) in tr._bview:  # a weight: a linear layer by matmul
        return False
    if olab is not None:  # a one-channel weight map broadcast over the channels stays one
        if other.shape[olab.dim] != 1:
            return False
        tr.uf.fix(olab.segs, f"fixed: one weight per position in {tr.where()}, for every channel")
    module = tr._stack[-1][0] if tr._stack else ""
    name = f"{module}.matmul" if module else "matmul"
    tr.once(name)
    c = out.shape[dim]
    tr.add_layer(
        RawLayer(
            name=name,
            kind="pool",
            in_segs=lab.segs,
            out_segs=lab.segs,
            params={},
            kernel=(a.shape[-1],),
            positions=out.numel() // c,
        )
    )
    tr.set_label(out, Label(dim, lab.segs))
    return True


def _linear(tr: TracerBase, out, input, weight, bias=None):
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    if wname is None:
        raise tr.fail("linear weight is computed, not a parameter")
    module = tr.split_name(wname)[0]
    tr.once(module)
    lab = tr.label_or_fixed(input, input.ndim - 1)
    if lab.dim != input.ndim - 1:
        raise tr.fail(f"linear layer '{module}' gets channels at dim {lab.dim}, not the last dim")
    c_out = out.shape[-1]
    out_segs = (tr.uf.add(c_out),)
    params = tr.take_params(weight=wname, bias=bname)
    tr.add_layer(
        RawLayer(
            name=module,
            kind="linear",
            in_segs=lab.segs,
            out_segs=out_segs,
            params=params,
            kernel=(),
            positions=out.numel() // c_out,
            out_size=tuple(out.shape[1:-1]),
        )
    )
    tr.set_label(out, Label(out.ndim - 1, out_segs))


def _norm(tr: TracerBase, out, input, dim: int, weight, bias, extra=(), num_groups: int = 1):
    if id(input) in tr._pview and tr.label(input) is None:  # standardizes a weight
        tr._follow_constants("norm", [input], [out])
        return
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    module = tr.module_of(weight, bias, *extra)
    tr.once(module)
    lab = tr.label_or_fixed(input, dim)
    if lab.dim != dim:
        raise tr.fail(f"normalization '{module}' does not normalize over the channel dim")
    if num_groups > 1:
        tr.uf.require_multiple(lab.segs, num_groups, f"group norm '{module}'")
    params = tr.take_params(weight=wname, bias=bname)
    tr.add_layer(
        RawLayer(
            name=module,
            kind="norm",
            in_segs=lab.segs,
            out_segs=lab.segs,
            params=params,
            per_channel=len(params),
        )
    )
    tr.set_label(out, Label(dim, lab.segs))


def _batch_norm(tr, out, input, running_mean, running_var, weight=None, bias=None, *a, **k):
    _norm(tr, out, input, 1, weight, bias, extra=(running_mean, running_var))


def _layer_norm(tr, out, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if len(normalized_shape) != 1:
        raise tr.fail(f"layer_norm over {tuple(normalized_shape)} mixes channels with other dims")
    _norm(tr, out, input, input.ndim - 1, weight, bias)


def _group_norm(tr, out, input, num_groups, weight=None, bias=None, eps=1e-5):
    _norm(tr, out, input, 1, weight, bias, num_groups=num_groups)


HANDLERS: dict[str, Callable[..., None]] = {
    "torch.nn.functional.conv2d": _conv2d,
    "torch.conv2d": _conv2d,
    "torch.nn.functional.conv1d": _conv1d,
    "torch.conv1d": _conv1d,
    "torch.nn.functional.linear": _linear,
    "torch.nn.functional.batch_norm": _batch_norm,
    "torch.nn.functional.layer_norm": _layer_norm,
    "torch.nn.functional.group_norm": _group_norm,
}
"""The rules of this module by op name (matmuls are dispatched to :func:`pooling_matmul`)."""

__all__ = ["HANDLERS", "pooling_matmul"]
