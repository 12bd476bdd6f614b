"""Channel analysis: one forward pass that finds which channels must keep one width.

Why a ``TorchFunctionMode``: it sees every torch function a model calls (``F.conv2d``,
``torch.cat``, ``Tensor.permute``, ``x * gate``) at the level the model's author wrote it, with
the real tensors and the real parameters, and it needs no symbolic tracing. timm models with
data-dependent padding (``Conv2dSame``) or Python control flow run unchanged, and the pass costs
about one forward plus a dictionary look-up per op, far less than an autograd-graph walk.

Every tensor that carries channels gets a *label*: the dim that holds the channels and the list
of channel *segments* along it (one segment per coupled node; ``torch.cat`` along channels gives
several). Ops that combine channel tensors elementwise union their nodes; convolutions and
linear layers start new nodes. What comes out is a list of raw layer records over union-find
nodes, which :mod:`widthsearch.space` turns into groups and layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode, resolve_name

from .errors import UnsupportedModelError


class _UnionFind:
    """Union-find over channel nodes; every node has a channel count that unions must respect."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.width: list[int] = []
        self.fixed: list[bool] = []
        self.multiple_of: list[int] = []

    def add(self, width: int, *, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.width.append(width)
        self.fixed.append(fixed)
        self.multiple_of.append(1)
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.width[ra] != self.width[rb]:  # pragma: no cover - guarded by shape checks
            raise AssertionError(f"union of {self.width[ra]} and {self.width[rb]} channels")
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]
        self.multiple_of[ra] = math.lcm(self.multiple_of[ra], self.multiple_of[rb])
        return ra


@dataclass(frozen=True)
class _Label:
    dim: int
    segs: tuple[int, ...]


@dataclass
class RawLayer:
    """One weight-carrying op seen during the forward pass, over union-find nodes."""

    name: str  # module path, or parameter path for a loose parameter
    kind: str  # conv | depthwise | grouped | linear | norm | scale
    in_segs: tuple[int, ...]
    out_segs: tuple[int, ...]
    params: dict[str, str]  # role ("weight", "bias", "param") -> attribute name on the module
    kernel: tuple[int, ...] = ()
    groups: int = 1
    channels_per_group: int = 1
    positions: int = 0  # output positions per channel: MACs of one weight
    out_size: tuple[int, ...] = ()
    per_channel: int = 0  # norm / scale: parameters per channel
    param_dim: int = 0  # scale: the parameter's channel dim


@dataclass
class TraceResult:
    uf: _UnionFind
    layers: list[RawLayer]
    constant_params: dict[str, int]  # parameters whose size does not depend on any width
    output_nodes: list[int] = field(default_factory=list)


_MATMUL_NAMES = {
    "torch.matmul",
    "torch.Tensor.matmul",
    "torch.Tensor.__matmul__",
    "torch.Tensor.__rmatmul__",
    "torch.mm",
    "torch.Tensor.mm",
    "torch.bmm",
    "torch.Tensor.bmm",
    "torch.einsum",
    "torch.baddbmm",
    "torch.addmm",
    "torch.addbmm",
    "torch.nn.functional.bilinear",
    "torch.nn.functional.scaled_dot_product_attention",
    "torch.nn.functional.conv1d",
    "torch.nn.functional.conv3d",
    "torch.nn.functional.conv_transpose1d",
    "torch.nn.functional.conv_transpose2d",
    "torch.nn.functional.conv_transpose3d",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.conv_transpose2d",
    "torch.nn.functional.unfold",
    "torch.nn.functional.fold",
}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "std", "var", "logsumexp", "nansum", "nanmean"}
_VIEWS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "view_as",
    "reshape_as",
}


_SKIP = {
    "torch.Tensor.dim",
    "torch.Tensor.ndim.__get__",
    "torch.Tensor.shape.__get__",
    "torch.Tensor.size",
    "torch.Tensor.numel",
    "torch.Tensor.dtype.__get__",
    "torch.Tensor.device.__get__",
    "torch.Tensor.is_contiguous",
    "torch.Tensor.__len__",
}
_NAMES: dict[Any, str] = {}
# ops whose output has their input's shape: traced without computing them (see trace_channels)
_SHAPE_KEEPING = {
    f"torch.nn.functional.{f}"
    for f in (
        "batch_norm",
        "layer_norm",
        "group_norm",
        "relu",
        "relu6",
        "silu",
        "gelu",
        "hardswish",
        "hardsigmoid",
        "hardtanh",
        "sigmoid",
        "tanh",
        "mish",
        "elu",
        "leaky_relu",
        "dropout",
    )
}


def _fname(func: Any) -> str:
    return resolve_name(func) or getattr(func, "__name__", repr(func))


def _tensors(items: Any) -> list[torch.Tensor]:
    """Tensors among ``items``, looking one level into lists, tuples and dicts."""
    found = []
    for a in items:
        if isinstance(a, torch.Tensor):
            found.append(a)
        elif isinstance(a, (list, tuple)):
            found.extend(x for x in a if isinstance(x, torch.Tensor))
        elif isinstance(a, dict):
            found.extend(x for x in a.values() if isinstance(x, torch.Tensor))
    return found


def _broadcast(tensors: list[torch.Tensor]) -> tuple[int, ...]:
    """The broadcast shape of ``tensors`` (``ValueError`` if they do not broadcast)."""
    ndim = max(t.ndim for t in tensors)
    shape = [1] * ndim
    for t in tensors:
        for i, size in enumerate(t.shape, ndim - t.ndim):
            if size != 1:
                if shape[i] not in (1, size):
                    raise ValueError("shapes do not broadcast")
                shape[i] = size
    return tuple(shape)


def _same_shape(input, *args, inplace=False, **kwargs):
    """Output of a norm or activation, which keeps its input's shape, without the arithmetic."""
    return input if inplace else input.new_empty(input.shape)


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _conv2d_shape_only(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """An uninitialized tensor shaped like ``F.conv2d``'s output (see :func:`trace_channels`)."""
    if input.ndim != 4 or input.shape[1] != weight.shape[1] * groups:  # let torch raise its error
        return torch.conv2d(input, weight, bias, stride, padding, dilation, groups)
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    kh, kw = weight.shape[2:]
    if padding == "same":
        h, w = input.shape[2:]
    else:
        ph, pw = (0, 0) if padding == "valid" else _pair(padding)
        h = (input.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w = (input.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if h < 1 or w < 1:  # input smaller than the kernel: torch says so
        return torch.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return input.new_empty((input.shape[0], weight.shape[0], h, w))


class ChannelTracer(TorchFunctionMode):
    """Labels channel tensors while the model runs; see the module docstring.

    ``compute=True`` runs convolutions, norms and activations for real instead of shape-only,
    so that autograd can record the pass (:mod:`widthsearch.memory` counts what it saves).
    """

    def __init__(self, model: nn.Module, *, compute: bool = False) -> None:
        super().__init__()
        self.compute = compute
        self.uf = _UnionFind()
        self.layers: list[RawLayer] = []
        self._labels: dict[int, _Label] = {}
        self._pview: dict[int, str] = {}  # id(tensor) -> parameter name it is a view of
        self._keep: list[torch.Tensor] = []  # keeps labelled tensors alive so ids stay unique
        self._params: dict[str, nn.Parameter] = {}
        self._owner: dict[int, str] = {}  # id(parameter or buffer) -> its name
        self._module_names: dict[nn.Module, str] = {}
        for mname, m in model.named_modules():  # one walk instead of three
            self._module_names[m] = mname
            prefix = f"{mname}." if mname else ""
            for n, b in m._buffers.items():
                if b is not None:
                    self._owner.setdefault(id(b), prefix + n)
            for n, p in m._parameters.items():
                if p is not None and id(p) not in self._owner:
                    self._owner[id(p)] = self._pview[id(p)] = prefix + n
                    self._params[prefix + n] = p
        self._consumed: set[str] = set()
        self._stack: list[tuple[str, str]] = []  # (module path, class name) of running modules
        self.failed_in = ""  # where the model itself raised, for the error message
        self._calls: set[str] = set()

    # ----------------------------------------------------------------- module stack (errors)
    def pre_hook(self, module: nn.Module, args: Any) -> None:
        self._stack.append((self._module_names.get(module, ""), type(module).__name__))

    def post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack:
            self._stack.pop()

    def where(self) -> str:
        if not self._stack or not self._stack[-1][0]:
            return "the model"
        return "module '{}' ({})".format(*self._stack[-1])

    def fail(self, what: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"cannot analyse {self.where()}: {what}; widthsearch handles CNNs built from 2-D "
            "convs, norms, linear layers and elementwise ops"
        )

    # ----------------------------------------------------------------- labels
    def label(self, t: torch.Tensor) -> _Label | None:
        return self._labels.get(id(t))

    def set_label(self, t: torch.Tensor, lab: _Label) -> None:
        self._labels[id(t)] = lab
        self._keep.append(t)

    def label_or_fixed(self, t: torch.Tensor, dim: int) -> _Label:
        """The tensor's label; an unlabelled tensor (the image) gets a fixed node at ``dim``."""
        lab = self.label(t)
        if lab is None:
            lab = _Label(dim, (self.uf.add(t.shape[dim], fixed=True),))
            self.set_label(t, lab)
        return lab

    def seg_widths(self, segs: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.uf.width[self.uf.find(s)] for s in segs)

    def union_segs(self, a: tuple[int, ...], b: tuple[int, ...]) -> None:
        if a == b:
            return
        if self.seg_widths(a) != self.seg_widths(b):
            raise self.fail(
                f"combines channel tensors concatenated differently ({self.seg_widths(a)} vs "
                f"{self.seg_widths(b)})"
            )
        for x, y in zip(a, b, strict=True):
            self.uf.union(x, y)

    def param_name(self, t: torch.Tensor | None) -> str | None:
        return None if t is None else self._pview.get(id(t))

    def split_name(self, pname: str) -> tuple[str, str]:
        mod, _, attr = pname.rpartition(".")
        return mod, attr

    def consume(self, *pnames: str | None) -> None:
        for p in pnames:
            if p is None:
                continue
            if p in self._consumed:
                raise self.fail(f"parameter '{p}' is used twice (weight sharing is not modelled)")
            self._consumed.add(p)

    def module_of(self, *tensors: torch.Tensor | None) -> str:
        for t in tensors:
            if t is not None and id(t) in self._owner:
                return self.split_name(self._owner[id(t)])[0]
        return self._stack[-1][0] if self._stack else ""

    def once(self, name: str) -> None:
        if name in self._calls:
            raise self.fail(f"'{name}' runs twice in one forward pass (reuse is not modelled)")
        self._calls.add(name)

    # ----------------------------------------------------------------- dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _NAMES.get(func)
        if name is None:
            name = _NAMES[func] = _fname(func)
        if name in _SKIP:
            return func(*args, **kwargs)
        try:
            if self.compute:
                out = func(*args, **kwargs)
            elif name == "torch.conv2d" or name == "torch.nn.functional.conv2d":
                out = _conv2d_shape_only(*args, **kwargs)
            elif name in _SHAPE_KEEPING:
                out = _same_shape(*args, **kwargs)
            else:
                out = func(*args, **kwargs)
        except Exception:
            self.failed_in = self.failed_in or self.where()
            raise
        if name in _MATMUL_NAMES:
            raise self.fail(f"'{name}' is not modelled (only 2-D convolutions and linear layers)")
        short = name.rpartition(".")[2]
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, out, *args, **kwargs)
        elif short in _REDUCTIONS and name.startswith("torch"):
            _reduction(self, out, *args, **kwargs)
        elif short in _VIEWS and name.startswith("torch"):
            self._view(out, args[0], name)
        else:
            self._generic(name, out, args, kwargs)
        return out

    # ----------------------------------------------------------------- generic rules
    def _view(self, out: torch.Tensor, x: torch.Tensor, name: str) -> None:
        """A view keeps channels where the row-major prefix before them is unchanged."""
        lab = self.label(x)
        if lab is None:
            self._generic(name, out, (x,), {})
            return
        c = x.shape[lab.dim]
        prefix = math.prod(x.shape[: lab.dim])
        acc = 1
        for j, size in enumerate(out.shape):
            if size == c and acc == prefix:
                self.set_label(out, _Label(j, lab.segs))
                return
            acc *= size
        raise self.fail(
            f"'{name}' reshapes {tuple(x.shape)} to {tuple(out.shape)} and mixes the channel dim "
            f"{lab.dim} with others"
        )

    def _generic(self, name: str, out: Any, args: tuple, kwargs: dict) -> None:
        tensors = _tensors((*args, *kwargs.values()))
        if not tensors:
            return
        labeled = [(t, self._labels[id(t)]) for t in tensors if id(t) in self._labels]
        outs = _tensors((out,))
        if not labeled:
            pviews = [(t, self._pview[id(t)]) for t in tensors if id(t) in self._pview]
            if len(pviews) == 1 and len(outs) == 1:
                t, p = pviews[0]
                if outs[0].numel() == t.numel() and id(outs[0]) not in self._pview:
                    self._pview[id(outs[0])] = p
                    self._keep.append(outs[0])
            return
        for o in outs:
            if not self._elementwise(o, tensors, labeled) and not self._same_channels(o, labeled):
                t, lab = labeled[0]
                raise self.fail(
                    f"'{name}' maps {tuple(t.shape)} (channels at dim {lab.dim}) to "
                    f"{tuple(o.shape)}, which widthsearch cannot follow"
                )

    def _elementwise(
        self,
        o: torch.Tensor,
        tensors: list[torch.Tensor],
        labeled: list[tuple[torch.Tensor, _Label]],
    ) -> bool:
        """Broadcasting op: channel dims aligned from the right are one group."""
        try:
            if _broadcast(tensors) != tuple(o.shape):
                return False
        except ValueError:
            return False
        od, segs = None, None
        for t, lab in labeled:
            d = o.ndim - t.ndim + lab.dim
            if t.shape[lab.dim] == o.shape[d]:
                if od is None:
                    od, segs = d, lab.segs
                elif d != od:
                    raise self.fail("combines tensors whose channels sit on different dims")
                else:
                    self.union_segs(segs, lab.segs)
            else:  # a one-channel tensor broadcast over channels must stay one channel
                for s in lab.segs:
                    self.uf.fixed[self.uf.find(s)] = True
        if od is None:
            return False
        c = o.shape[od]
        for t in tensors:
            if id(t) in self._labels:
                continue
            d = t.ndim - o.ndim + od
            if d < 0 or t.shape[d] != c or c == 1:
                continue
            pname = self._pview.get(id(t))
            if pname is not None:
                self._scale(pname, segs, c)
            else:  # a constant with one value per channel cannot follow a new width
                for s in segs:
                    self.uf.fixed[self.uf.find(s)] = True
        self.set_label(o, _Label(od, segs))
        return True

    def _same_channels(self, o: torch.Tensor, labeled: list[tuple[torch.Tensor, _Label]]) -> bool:
        """Pooling, padding, resizing: one channel input, same rank, channel count kept."""
        if len(labeled) != 1:
            return False
        t, lab = labeled[0]
        if o.ndim != t.ndim:
            return False
        if o.shape[lab.dim] == t.shape[lab.dim]:
            self.set_label(o, _Label(lab.dim, lab.segs))
            return True
        return o.shape[lab.dim] == 1  # channels reduced away: the result carries none

    def _scale(self, pname: str, segs: tuple[int, ...], c: int) -> None:
        p = self._params[pname]
        dims = [i for i, s in enumerate(p.shape) if s == c]
        if len(dims) != 1:
            raise self.fail(
                f"parameter '{pname}' of shape {tuple(p.shape)} scales channels ambiguously"
            )
        self.consume(pname)
        mod, attr = self.split_name(pname)
        self.layers.append(
            RawLayer(
                name=pname,
                kind="scale",
                in_segs=segs,
                out_segs=segs,
                params={"param": attr},
                per_channel=p.numel() // c,
                param_dim=dims[0],
            )
        )

    def finish(self, model_out: Any) -> TraceResult:
        outputs = []
        for o in _tensors((model_out,)):
            lab = self.label(o) if isinstance(o, torch.Tensor) else None
            if lab is not None:
                for s in lab.segs:
                    self.uf.fixed[self.uf.find(s)] = True
                    outputs.append(s)
        constant = {n: p.numel() for n, p in self._params.items() if n not in self._consumed}
        return TraceResult(self.uf, self.layers, constant, outputs)


# --------------------------------------------------------------------- op handlers
def _conv2d(
    tr: ChannelTracer, out, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
):
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    if wname is None:
        raise tr.fail("conv2d weight is computed, not a parameter (weight standardization?)")
    module, wattr = tr.split_name(wname)
    tr.once(module)
    lab = tr.label_or_fixed(input, 1)
    if lab.dim != 1:
        raise tr.fail(f"conv2d input has its channels at dim {lab.dim}")
    c_in, c_out = input.shape[1], out.shape[1]
    cpg = c_in // groups
    if groups == 1:
        kind, out_segs = "conv", (tr.uf.add(c_out),)
    elif cpg == 1:  # depthwise: one channel per group, the output follows the input
        if c_out != c_in or len(lab.segs) != 1:
            raise tr.fail(f"depthwise conv '{module}' with a channel multiplier is not modelled")
        kind, out_segs = "depthwise", lab.segs
    else:  # grouped: the number of groups stays, input and output widths are free multiples of it
        if len(lab.segs) != 1:
            raise tr.fail(f"grouped conv '{module}' over concatenated channels is not modelled")
        kind, out_segs = "grouped", (tr.uf.add(c_out),)
        for node in (lab.segs[0], out_segs[0]):
            root = tr.uf.find(node)
            tr.uf.multiple_of[root] = math.lcm(tr.uf.multiple_of[root], groups)
    tr.consume(wname, bname)
    params = {"weight": wattr}
    if bname is not None:
        params["bias"] = tr.split_name(bname)[1]
    tr.layers.append(
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
    tr.set_label(out, _Label(1, out_segs))


def _linear(tr: ChannelTracer, out, input, weight, bias=None):
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    if wname is None:
        raise tr.fail("linear weight is computed, not a parameter")
    module, wattr = tr.split_name(wname)
    tr.once(module)
    lab = tr.label_or_fixed(input, input.ndim - 1)
    if lab.dim != input.ndim - 1:
        raise tr.fail(f"linear layer '{module}' gets channels at dim {lab.dim}, not the last dim")
    c_out = out.shape[-1]
    out_segs = (tr.uf.add(c_out),)
    tr.consume(wname, bname)
    params = {"weight": wattr}
    if bname is not None:
        params["bias"] = tr.split_name(bname)[1]
    tr.layers.append(
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
    tr.set_label(out, _Label(out.ndim - 1, out_segs))


def _norm(tr: ChannelTracer, out, input, dim: int, weight, bias, extra=(), num_groups: int = 1):
    wname, bname = tr.param_name(weight), tr.param_name(bias)
    module = tr.module_of(weight, bias, *extra)
    tr.once(module)
    lab = tr.label_or_fixed(input, dim)
    if lab.dim != dim:
        raise tr.fail(f"normalization '{module}' does not normalize over the channel dim")
    if num_groups > 1:
        if len(lab.segs) != 1:
            raise tr.fail(f"group norm '{module}' over concatenated channels is not modelled")
        root = tr.uf.find(lab.segs[0])
        tr.uf.multiple_of[root] = math.lcm(tr.uf.multiple_of[root], num_groups)
    tr.consume(wname, bname)
    params = {}
    if wname is not None:
        params["weight"] = tr.split_name(wname)[1]
    if bname is not None:
        params["bias"] = tr.split_name(bname)[1]
    tr.layers.append(
        RawLayer(
            name=module,
            kind="norm",
            in_segs=lab.segs,
            out_segs=lab.segs,
            params=params,
            per_channel=len(params),
        )
    )
    tr.set_label(out, _Label(dim, lab.segs))


def _batch_norm(tr, out, input, running_mean, running_var, weight=None, bias=None, *a, **k):
    _norm(tr, out, input, 1, weight, bias, extra=(running_mean, running_var))


def _layer_norm(tr, out, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if len(normalized_shape) != 1:
        raise tr.fail(f"layer_norm over {tuple(normalized_shape)} mixes channels with other dims")
    _norm(tr, out, input, input.ndim - 1, weight, bias)


def _group_norm(tr, out, input, num_groups, weight=None, bias=None, eps=1e-5):
    _norm(tr, out, input, 1, weight, bias, num_groups=num_groups)


def _cat(tr: ChannelTracer, out, tensors, dim=0, **kw):
    labels = [tr.label(t) for t in tensors]
    if all(lab is None for lab in labels):
        return
    d = dim % out.ndim
    if all(lab is not None and lab.dim == d for lab in labels):
        tr.set_label(out, _Label(d, tuple(s for lab in labels for s in lab.segs)))
        return
    known = [lab for lab in labels if lab is not None]
    if any(lab.dim == d for lab in known):
        raise tr.fail("torch.cat joins channel tensors with tensors that carry no channels")
    if len({lab.dim for lab in known}) != 1:
        raise tr.fail("torch.cat joins tensors whose channels sit on different dims")
    for lab in known[1:]:
        tr.union_segs(known[0].segs, lab.segs)
    lab = known[0]
    for t, tlab in zip(tensors, labels, strict=True):
        if tlab is None and t.shape[lab.dim] > 1:  # e.g. a class token joined along tokens
            pname = tr.param_name(t)
            if pname is not None:
                tr._scale(pname, lab.segs, t.shape[lab.dim])
            else:
                for s in lab.segs:
                    tr.uf.fixed[tr.uf.find(s)] = True
    tr.set_label(out, lab)


def _permute(tr: ChannelTracer, out, x, *dims):
    lab = tr.label(x)
    if lab is None:
        tr._generic("permute", out, (x, *dims), {})
        return
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    dims = [d % x.ndim for d in dims]
    tr.set_label(out, _Label(dims.index(lab.dim), lab.segs))


def _transpose(tr: ChannelTracer, out, x, dim0, dim1):
    lab = tr.label(x)
    if lab is None:
        tr._generic("transpose", out, (x, dim0, dim1), {})
        return
    d0, d1, d = dim0 % x.ndim, dim1 % x.ndim, lab.dim
    tr.set_label(out, _Label(d1 if d == d0 else d0 if d == d1 else d, lab.segs))


def _reduction(tr: ChannelTracer, out, x, dim=None, keepdim=False, *a, **k):
    lab = tr.label(x) if isinstance(x, torch.Tensor) else None
    if lab is None or not isinstance(out, torch.Tensor):
        return
    if dim is None:
        return
    dims = [dim] if isinstance(dim, int) else list(dim)
    dims = [d % x.ndim for d in dims]
    if lab.dim in dims:
        return  # reduced over channels: the result carries none
    new = lab.dim if keepdim else lab.dim - sum(d < lab.dim for d in dims)
    tr.set_label(out, _Label(new, lab.segs))


def _getitem(tr: ChannelTracer, out, x, idx):
    lab = tr.label(x)
    if lab is None:
        tr._generic("__getitem__", out, (x, idx), {})
        return
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in idx):
        raise tr.fail("advanced indexing of a channel tensor is not modelled")
    n_real = sum(1 for i in idx if isinstance(i, (int, slice)))
    if Ellipsis in idx:
        e = idx.index(Ellipsis)
        idx = idx[:e] + (slice(None),) * (x.ndim - n_real) + idx[e + 1 :]
    idx = idx + (slice(None),) * (x.ndim - sum(1 for i in idx if i is not None))
    in_d = out_d = 0
    for i in idx:
        if i is None:
            out_d += 1
            continue
        if in_d == lab.dim:
            if not (isinstance(i, slice) and i == slice(None)) and x.shape[in_d] > 1:
                raise tr.fail("slicing a channel tensor along its channels is not modelled")
            tr.set_label(out, _Label(out_d, lab.segs))
            return
        in_d += 1
        out_d += 0 if isinstance(i, int) else 1


_HANDLERS = {
    "torch.nn.functional.conv2d": _conv2d,
    "torch.conv2d": _conv2d,
    "torch.nn.functional.linear": _linear,
    "torch.nn.functional.batch_norm": _batch_norm,
    "torch.nn.functional.layer_norm": _layer_norm,
    "torch.nn.functional.group_norm": _group_norm,
    "torch.cat": _cat,
    "torch.concat": _cat,
    "torch.concatenate": _cat,
    "torch.Tensor.permute": _permute,
    "torch.permute": _permute,
    "torch.Tensor.transpose": _transpose,
    "torch.transpose": _transpose,
    "torch.Tensor.__getitem__": _getitem,
}


def trace_channels(
    model: nn.Module, example_input: torch.Tensor, *, hint: str = "; try another input size"
) -> TraceResult:
    """Run ``model`` once on ``example_input`` in eval mode and return its channel structure.

    Convolutions, norms and activations are not computed: their outputs are uninitialized
    tensors of the right shape, which saves most of a forward pass. Values never decide the
    channel structure of the CNNs we analyse, and every shape stays real. ``hint`` ends the
    message when the model itself fails on the input.
    """
    tracer = ChannelTracer(model)
    was_training = model.training
    if was_training:
        model.eval()
    pre = nn.modules.module.register_module_forward_pre_hook(tracer.pre_hook)
    post = nn.modules.module.register_module_forward_hook(tracer.post_hook, always_call=True)
    try:
        with torch.no_grad(), tracer:
            out = model(example_input)
    except UnsupportedModelError:
        raise
    except Exception as exc:  # the model itself failed on the example input
        raise UnsupportedModelError(
            f"the model failed on an input of shape {tuple(example_input.shape)} in "
            f"{tracer.failed_in or tracer.where()} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}){hint}"
        ) from exc
    finally:
        pre.remove()
        post.remove()
        if was_training:
            model.train()
    return tracer.finish(out)


__all__ = ["ChannelTracer", "RawLayer", "TraceResult", "trace_channels"]
