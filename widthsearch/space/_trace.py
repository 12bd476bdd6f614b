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

from widthsearch.errors import UnsupportedModelError


class _UnionFind:
    """Union-find over channel nodes; every node has a channel count that unions must respect.

    A node can be *refined* into consecutive child nodes (a split of its channels: one conv
    output that a ``torch.split`` cuts in two). Expanding a node gives its *leaves*, the
    finest segments, and every union or constraint acts on leaves, so a refinement made late in
    the pass reaches every tensor and layer that holds the node. Two unions of different
    segmentations (``x + y`` where ``x`` is a concatenation and ``y`` a single conv output)
    refine both to their common boundaries first.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.width: list[int] = []
        self.fixed: list[bool] = []
        self.multiple_of: list[int] = []
        self.children: dict[int, tuple[int, ...]] = {}
        self.notes: dict[int, list[str]] = {}
        self.constraints: list[tuple[tuple[int, ...], int, str]] = []

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

    # ------------------------------------------------------------------ segments
    def leaves(self, node: int) -> list[int]:
        """The finest segments of ``node``, in channel order (roots of leaf nodes)."""
        root = self.find(node)
        kids = self.children.get(root)
        if kids is None:
            return [root]
        return [leaf for k in kids for leaf in self.leaves(k)]

    def expand(self, segs: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        return tuple(leaf for s in segs for leaf in self.leaves(s))

    def total(self, segs: tuple[int, ...] | list[int]) -> int:
        return sum(self.width[self.find(s)] for s in segs)

    def refine(self, node: int, offsets: list[int]) -> None:
        """Make every offset in ``offsets`` (inside ``node``'s channels) a segment boundary."""
        if not offsets:
            return
        root = self.find(node)
        kids = self.children.get(root)
        if kids is None:
            cuts = sorted(set(offsets))
            sizes = [b - a for a, b in zip([0, *cuts], [*cuts, self.width[root]], strict=True)]
            kids = tuple(self.add(s, fixed=self.fixed[root]) for s in sizes)
            self.children[root] = kids
            for k in kids:
                self.notes[k] = list(self.notes.get(root, []))
            return
        pos = 0
        for k in kids:
            w = self.width[self.find(k)]
            self.refine(k, [o - pos for o in offsets if pos < o < pos + w])
            pos += w

    def cut(self, segs: tuple[int, ...], sizes: list[int]) -> list[tuple[int, ...]]:
        """Refine ``segs`` so that consecutive pieces of ``sizes`` channels fall on segment
        boundaries; the leaves of each piece."""
        bounds, acc = [], 0
        for s in sizes[:-1]:
            acc += s
            bounds.append(acc)
        pos = 0
        for s in segs:
            w = self.width[self.find(s)]
            self.refine(s, [b - pos for b in bounds if pos < b < pos + w])
            pos += w
        leaves = self.expand(segs)
        pieces: list[tuple[int, ...]] = []
        j = 0
        for size in sizes:
            piece, acc = [], 0
            while acc < size:
                piece.append(leaves[j])
                acc += self.width[leaves[j]]
                j += 1
            pieces.append(tuple(piece))
        return pieces

    def _bounds(self, segs: tuple[int, ...]) -> list[int]:
        out, acc = [], 0
        for leaf in self.expand(segs):
            acc += self.width[leaf]
            out.append(acc)
        return out

    def align(self, a: tuple[int, ...], b: tuple[int, ...]) -> None:
        """Union two segment lists of equal total width, channel by channel: both are refined
        to their common boundaries, then their leaves are united pairwise."""
        while True:
            ba, bb = self._bounds(a), self._bounds(b)
            if ba == bb:
                break
            every = sorted(set(ba) | set(bb))
            for segs in (a, b):
                pos = 0
                for s in segs:
                    w = self.width[self.find(s)]
                    self.refine(s, [x - pos for x in every if pos < x < pos + w])
                    pos += w
        for x, y in zip(self.expand(a), self.expand(b), strict=True):
            self._union_leaves(x, y)

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.width[ra] != self.width[rb]:  # pragma: no cover - guarded by shape checks
            raise AssertionError(f"union of {self.width[ra]} and {self.width[rb]} channels")
        if ra in self.children or rb in self.children:
            self.align((ra,), (rb,))
            return self.find(a)
        return self._union_leaves(ra, rb)

    def _union_leaves(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]
        self.multiple_of[ra] = math.lcm(self.multiple_of[ra], self.multiple_of[rb])
        notes = self.notes.setdefault(ra, [])
        notes += [n for n in self.notes.pop(rb, []) if n not in notes]
        return ra

    # ------------------------------------------------------------------ constraints
    def note(self, segs: tuple[int, ...] | list[int], text: str) -> None:
        for leaf in self.expand(segs):
            notes = self.notes.setdefault(leaf, [])
            if text not in notes:
                notes.append(text)

    def fix(self, segs: tuple[int, ...] | list[int], why: str = "") -> None:
        """Keep the width of every leaf of ``segs``."""
        for s in segs:
            self.fixed[self.find(s)] = True
        for leaf in self.expand(segs):
            self.fixed[leaf] = True
        if why:
            self.note(segs, why)

    def require_multiple(self, segs: tuple[int, ...] | list[int], m: int, what: str) -> None:
        """The total width of ``segs`` must stay a multiple of ``m`` (see :meth:`resolve`)."""
        if m > 1:
            self.constraints.append((tuple(segs), m, what))

    def resolve(self) -> None:
        """Turn the multiple-of constraints into per-group grids, once the segments are final.

        A total ``Σ_g n_g·w_g`` (group ``g`` appearing ``n_g`` times) stays a multiple of ``m``
        when each ``w_g`` is a multiple of ``m / gcd(m, n_g)``; where the base widths are not
        (a split cut the channels of a grouped conv off its grid), the groups are fixed.
        """
        for segs, m, what in self.constraints:
            counts: dict[int, int] = {}
            for leaf in self.expand(segs):
                counts[leaf] = counts.get(leaf, 0) + 1
            need = {leaf: m // math.gcd(m, n) for leaf, n in counts.items()}
            if all(self.width[leaf] % k == 0 for leaf, k in need.items()):
                for leaf, k in need.items():
                    self.multiple_of[leaf] = math.lcm(self.multiple_of[leaf], k)
            else:
                self.fix(segs, f"fixed: {what} needs a multiple of {m} channels across groups")
        self.constraints = []


@dataclass(frozen=True)
class _Label:
    dim: int
    segs: tuple[int, ...]


@dataclass
class RawLayer:
    """One weight-carrying op seen during the forward pass, over union-find nodes."""

    name: str  # module path; parameter path (scale) or buffer path (filter)
    kind: str  # conv | depthwise | grouped | linear | norm | scale | filter | chanconv | pool
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
    constant: int = 0  # chanconv: its parameters, which no width changes


@dataclass
class RawAttr:
    """A module attribute that holds channel counts a split reads (``GhostModule.out_chs``,
    ``MixedConv2d.splits``): realization sets it from the widths of ``parts``."""

    module: str
    attr: str
    container: str  # "int", or the type of a sequence: "tuple" | "list"
    parts: list[tuple[int, ...]]  # union-find nodes whose widths add up to each value


@dataclass
class TraceResult:
    uf: _UnionFind
    layers: list[RawLayer]
    constant_params: dict[str, int]  # parameters whose size does not depend on any width
    output_nodes: list[int] = field(default_factory=list)
    attrs: list[RawAttr] = field(default_factory=list)

    def group_roots(self) -> list[int]:
        """Leaf roots in group-id order: first seen in the layers, then in the attributes."""
        order: dict[int, None] = {}
        for raw in self.layers:
            for s in (*raw.in_segs, *raw.out_segs):
                order.setdefault(self.uf.find(s))
        for attr in self.attrs:
            for part in attr.parts:
                for s in part:
                    order.setdefault(self.uf.find(s))
        return list(order)


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
    "torch.nn.functional.conv3d",
    "torch.nn.functional.conv_transpose1d",
    "torch.nn.functional.conv_transpose2d",
    "torch.nn.functional.conv_transpose3d",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.conv_transpose2d",
    "torch.nn.functional.unfold",
    "torch.nn.functional.fold",
}
# matmuls that may pool over positions with channel-free weights (see ``_pooling_matmul``)
_POOLING_MATMULS = {
    "torch.matmul",
    "torch.Tensor.matmul",
    "torch.Tensor.__matmul__",
    "torch.bmm",
    "torch.Tensor.bmm",
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
_EXPANDS = {"expand", "expand_as", "broadcast_to"}


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
    so that autograd can record the pass (:mod:`widthsearch.hardware.memory` counts what it saves).
    """

    def __init__(self, model: nn.Module, *, compute: bool = False) -> None:
        super().__init__()
        self.compute = compute
        self.uf = _UnionFind()
        self.layers: list[RawLayer] = []
        self.attrs: dict[tuple[str, str], RawAttr] = {}
        self._labels: dict[int, _Label] = {}
        self._pview: dict[int, str] = {}  # id(tensor) -> parameter name it is a view of
        self._bview: dict[int, str] = {}  # id(tensor) -> buffer name it is made from
        self._wild: set[int] = set()  # ids of channel-free tensors expanded to a channel shape
        self._keep: list[torch.Tensor] = []  # keeps labelled tensors alive so ids stay unique
        self._params: dict[str, nn.Parameter] = {}
        self._buffers: dict[str, torch.Tensor] = {}
        self._owner: dict[int, str] = {}  # id(parameter or buffer) -> its name
        self._module_names: dict[nn.Module, str] = {}
        for mname, m in model.named_modules():  # one walk instead of three
            self._module_names[m] = mname
            prefix = f"{mname}." if mname else ""
            for n, b in m._buffers.items():
                if b is not None and id(b) not in self._owner:
                    self._owner[id(b)] = self._bview[id(b)] = prefix + n
                    self._buffers[prefix + n] = b
            for n, p in m._parameters.items():
                if p is not None and id(p) not in self._owner:
                    self._owner[id(p)] = self._pview[id(p)] = prefix + n
                    self._params[prefix + n] = p
        self._consumed: set[str] = set()
        self._stack: list[tuple[str, str, nn.Module]] = []  # running modules: path, class, module
        self.failed_in = ""  # where the model itself raised, for the error message
        self._calls: set[str] = set()

    # ----------------------------------------------------------------- module stack (errors)
    def pre_hook(self, module: nn.Module, args: Any) -> None:
        self._stack.append((self._module_names.get(module, ""), type(module).__name__, module))

    def post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack:
            self._stack.pop()

    def where(self) -> str:
        if not self._stack or not self._stack[-1][0]:
            return "the model"
        return "module '{}' ({})".format(*self._stack[-1][:2])

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
        """The channels of ``a`` and ``b`` are combined one by one: unite them, segment by
        segment after refining both to common boundaries (a concatenation meets a split)."""
        if a == b:
            return
        if self.uf.total(a) != self.uf.total(b):
            raise self.fail(
                f"combines channel tensors of {self.uf.total(a)} and {self.uf.total(b)} channels"
            )
        self.uf.align(a, b)

    def tie(self, pieces: list[tuple[int, ...]], why: str) -> None:
        """Pieces of one split that must keep equal widths become one group."""
        for p in pieces[1:]:
            self.union_segs(pieces[0], p)
        if len(pieces) > 1:
            self.uf.note(pieces[0], why)

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

    def take_params(self, **pnames: str | None) -> dict[str, str]:
        """Consume the given parameters (:meth:`consume`) and return their attribute names by
        role, e.g. ``{"weight": "weight", "bias": "bias"}``; roles given None are left out."""
        self.consume(*pnames.values())
        return {role: self.split_name(p)[1] for role, p in pnames.items() if p is not None}

    def module_of(self, *tensors: torch.Tensor | None) -> str:
        for t in tensors:
            if t is not None and id(t) in self._owner:
                return self.split_name(self._owner[id(t)])[0]
        return self._stack[-1][0] if self._stack else ""

    def once(self, name: str) -> None:
        if name in self._calls:
            raise self.fail(f"'{name}' runs twice in one forward pass (reuse is not modelled)")
        self._calls.add(name)

    # ----------------------------------------------------------------- split sizes
    def size_attrs(self, value: int | list[int]) -> list[str]:
        """Attributes of the running module that hold ``value`` (an int or a sequence)."""
        if not self._stack:
            return []
        found = []
        for key, v in vars(self._stack[-1][2]).items():
            if key.startswith("_") or isinstance(v, bool):
                continue
            if (
                isinstance(value, int)
                and type(v) is int
                and v == value
                or (
                    isinstance(value, list)
                    and isinstance(v, (tuple, list))
                    and list(v) == value
                    and all(type(e) is int for e in v)
                )
            ):
                found.append(key)
        return found

    def claim(self, attr: str, parts: list[tuple[int, ...]], container: str) -> None:
        """``attr`` of the running module holds the widths of ``parts``: realization sets it.

        An attribute read by two splits ties what both read from it.
        """
        module = self._stack[-1][0]
        key = (module, attr)
        old = self.attrs.get(key)
        if old is None:
            self.attrs[key] = RawAttr(module, attr, container, list(parts))
            return
        if old.container != container or len(old.parts) != len(parts):  # pragma: no cover
            raise self.fail(f"attribute '{attr}' is read as different split sizes")
        for x, y in zip(old.parts, parts, strict=True):
            self.union_segs(x, y)

    def explain_size(self, value: int, piece: tuple[int, ...], what: str) -> None:
        """A piece of ``value`` channels: an attribute that holds it follows its width;
        without one the size is a constant and the piece keeps its width."""
        names = self.size_attrs(value)
        for name in names:
            self.claim(name, [piece], "int")
        if not names:
            self.uf.fix(piece, f"fixed: {what} in {self.where()} takes a constant size")

    def explain_offset(self, value: int, before: tuple[int, ...], what: str) -> None:
        """A split point at channel ``value``: an attribute that holds it follows the width of
        the channels ``before`` it; without one they keep their widths."""
        names = self.size_attrs(value)
        for name in names:
            self.claim(name, [before], "int")
        if not names:
            self.uf.fix(before, f"fixed: {what} in {self.where()} cuts at a constant offset")

    def split_pieces(self, x: torch.Tensor, lab: _Label, sizes: list[int]):
        """Cut ``x``'s channels into consecutive pieces of ``sizes``."""
        if sum(sizes) != x.shape[lab.dim]:  # pragma: no cover - torch checks the sizes
            raise self.fail(f"splits {x.shape[lab.dim]} channels into {sizes}")
        return self.uf.cut(lab.segs, sizes)

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
            if name not in _POOLING_MATMULS:
                raise self.fail(f"'{name}' is not modelled (only 2-D convs and linear layers)")
            if not _pooling_matmul(self, out, *args, **kwargs):
                raise self.fail(
                    f"'{name}' mixes channels or applies a weight (attention); only a matmul "
                    "that pools each channel over positions is modelled"
                )
            return out
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
        """A view keeps the channels where the row-major prefix before them is unchanged.

        It may also merge the channel dim with neighbouring dims (the channels repeat, as
        segments, once per position of those dims) or split it into constant leading factors
        and the channels (``(B, radix, C / radix, H, W)``: equal chunks, tied together).
        """
        lab = self.label(x)
        if lab is None:
            self._generic(name, out, (x,), {})
            return
        d, c = lab.dim, x.shape[lab.dim]
        prefix, suffix = math.prod(x.shape[:d]), math.prod(x.shape[d + 1 :])
        o = tuple(out.shape)
        left = [math.prod(o[:j]) for j in range(len(o) + 1)]
        for j, size in enumerate(o):
            if size == c and left[j] == prefix:
                self.set_label(out, _Label(j, lab.segs))
                return
        lefts = {math.prod(x.shape[:a]) for a in range(d + 1)}
        rights = {math.prod(x.shape[b + 1 :]) for b in range(d, x.ndim)}
        for j, size in enumerate(o):  # merge: the channels repeat over the merged dims
            lo, hi = left[j], math.prod(o[j + 1 :])
            if lo in lefts and hi in rights and (prefix // lo) * c * (suffix // hi) == size > c:
                post = suffix // hi
                segs = tuple(s for s in lab.segs for _ in range(post)) * (prefix // lo)
                self.set_label(out, _Label(j, segs))
                return
        for j in range(len(o)):  # split: constant leading factors, then the channels
            if left[j] != prefix:
                continue
            acc = 1
            for k in range(j, len(o)):
                acc *= o[k]
                if acc > c:
                    break
                if acc == c and k > j and o[k] > 1 and math.prod(o[k + 1 :]) == suffix:
                    chunks = c // o[k]
                    pieces = self.split_pieces(x, lab, [o[k]] * chunks)
                    self.tie(pieces, f"tied: {chunks} equal chunks in {self.where()}")
                    self.set_label(out, _Label(k, pieces[0]))
                    return
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
            self._follow_constants(name, tensors, outs)
            return
        for o in outs:
            if not self._elementwise(o, tensors, labeled) and not self._same_channels(o, labeled):
                t, lab = labeled[0]
                raise self.fail(
                    f"'{name}' maps {tuple(t.shape)} (channels at dim {lab.dim}) to "
                    f"{tuple(o.shape)}, which widthsearch cannot follow"
                )

    def _follow_constants(self, name: str, tensors: list, outs: list) -> None:
        """Outputs of ops on channel-free tensors: views of one parameter stay its views,
        tensors made from one buffer stay its, expansions are wildcards (see ``_elementwise``)."""
        if len(outs) != 1 or id(outs[0]) in self._pview or id(outs[0]) in self._bview:
            return
        o = outs[0]
        pviews = [t for t in tensors if id(t) in self._pview]
        if len(pviews) == 1 and o.numel() == pviews[0].numel():
            self._pview[id(o)] = self._pview[id(pviews[0])]
            self._keep.append(o)
        bviews = [t for t in tensors if id(t) in self._bview]
        if len(bviews) == 1 and len(tensors) == 1:
            self._bview[id(o)] = self._bview[id(bviews[0])]
            self._keep.append(o)
        short = name.rpartition(".")[2]
        expanded = short in _EXPANDS and not pviews and not bviews
        if expanded or any(id(t) in self._wild for t in tensors):
            self._wild.add(id(o))
            self._keep.append(o)

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
                self.uf.fix(lab.segs)
        if od is None:
            return False
        c = o.shape[od]
        for t in tensors:
            if id(t) in self._labels or id(t) in self._wild:
                continue
            d = t.ndim - o.ndim + od
            if d < 0 or t.shape[d] != c or c == 1:
                continue
            pname = self._pview.get(id(t))
            if pname is not None:
                self._scale(pname, segs, c)
            else:  # a constant with one value per channel cannot follow a new width
                self.uf.fix(segs, f"fixed: a constant per channel in {self.where()}")
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
                self.uf.fix(lab.segs)
                outputs.extend(lab.segs)
        constant = {n: p.numel() for n, p in self._params.items() if n not in self._consumed}
        uf = self.uf
        uf.resolve()
        for raw in self.layers:
            raw.in_segs, raw.out_segs = uf.expand(raw.in_segs), uf.expand(raw.out_segs)
        attrs = [
            RawAttr(a.module, a.attr, a.container, [uf.expand(p) for p in a.parts])
            for a in self.attrs.values()
        ]
        return TraceResult(uf, self.layers, constant, list(uf.expand(outputs)), attrs)


# --------------------------------------------------------------------- op handlers
def _conv2d(
    tr: ChannelTracer, out, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1
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
    if weight is not tr._params[wname]:  # weight standardization: computed from `weight`
        _per_channel_params(tr, module, c_out, out_segs)
    tr.set_label(out, _Label(1, out_segs))


def _multiplied(tr: ChannelTracer, lab: _Label, c_in: int, c_out: int, module: str):
    """Output segments of a depthwise conv: each input segment, ``c_out / c_in`` times."""
    if c_out % c_in:
        raise tr.fail(f"depthwise conv '{module}' maps {c_in} channels to {c_out}")
    m = c_out // c_in
    return tuple(s for s in lab.segs for _ in range(m))


def _per_channel_params(tr: ChannelTracer, module: str, c_out: int, out_segs) -> None:
    """Parameters of a conv that computes its weight (``ScaledStdConv2d``'s ``gain``) with one
    entry per output channel follow the output width."""
    prefix = f"{module}." if module else ""
    for pname, p in tr._params.items():
        if not pname.startswith(prefix) or "." in pname[len(prefix) :]:
            continue
        if pname in tr._consumed or p.numel() != c_out or c_out == 1:
            continue
        tr._scale(pname, out_segs, c_out)


def _filter(tr: ChannelTracer, out, input, weight, groups: int) -> None:
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
    tr.layers.append(
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
    tr.set_label(out, _Label(1, out_segs))


def _conv1d(tr: ChannelTracer, out, input, weight, bias=None, stride=1, padding=0, *a, **k):
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
    tr.layers.append(
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
    tr.set_label(out, _Label(out.ndim - 1, lab.segs))


def _pooling_matmul(tr: ChannelTracer, out, a, b, **kwargs) -> bool:
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
    tr.layers.append(
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
    tr.set_label(out, _Label(dim, lab.segs))
    return True


def _linear(tr: ChannelTracer, out, input, weight, bias=None):
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
                tr.uf.fix(lab.segs, f"fixed: a constant per channel in {tr.where()}")
    tr.set_label(out, lab)


def _stack(tr: ChannelTracer, out, tensors, dim=0, **kw):
    """Tensors stacked on a new dim (SelectiveKernel's paths): one group, channels shifted."""
    labels = [tr.label(t) for t in tensors]
    if all(lab is None for lab in labels):
        return
    if any(lab is None for lab in labels) or len({lab.dim for lab in labels}) != 1:
        raise tr.fail("torch.stack joins tensors whose channels sit on different dims")
    for lab in labels[1:]:
        tr.union_segs(labels[0].segs, lab.segs)
    d, new = labels[0].dim, dim % out.ndim
    tr.set_label(out, _Label(d + 1 if new <= d else d, labels[0].segs))


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
        if isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
            tr._generic("reduction", out, (x,), {})
        return
    if dim is None:
        return
    dims = [dim] if isinstance(dim, int) else list(dim)
    dims = [d % x.ndim for d in dims]
    if lab.dim in dims:
        return  # reduced over channels: the result carries none
    new = lab.dim if keepdim else lab.dim - sum(d < lab.dim for d in dims)
    tr.set_label(out, _Label(new, lab.segs))


# ------------------------------------------------------------------ splits of the channels
def _pieces_to(tr: ChannelTracer, outs, dim: int, pieces) -> None:
    for o, piece in zip(outs, pieces, strict=True):
        tr.set_label(o, _Label(dim, piece))


def _split(tr: ChannelTracer, out, x, split_size_or_sections, dim=0):
    """``torch.split``: by a list of sizes (each explained by an attribute holding the list or
    the size, or kept), or into equal pieces of one size (tied; an attribute holding the size,
    or the whole width when the size is a fraction of it, follows)."""
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        _other_dim(tr, out, x, lab)
        return
    c = x.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        sizes = [s] * (c // s) + ([c % s] if c % s else [])
    else:
        sizes = [int(v) for v in split_size_or_sections]
    pieces = tr.split_pieces(x, lab, sizes)
    _pieces_to(tr, out, d, pieces)
    what = "'split'"
    if not isinstance(split_size_or_sections, int):
        names = tr.size_attrs(sizes)
        for name in names:
            tr.claim(name, pieces, type(getattr(tr._stack[-1][2], name)).__name__)
        if not names:
            for size, piece in zip(sizes, pieces, strict=True):
                tr.explain_size(size, piece, what)
        return
    if len(pieces) == 1:
        return
    if c % s:
        tr.uf.fix(lab.segs, f"fixed: 'split' in {tr.where()} leaves a remainder")
        return
    tr.tie(pieces, f"tied: {len(pieces)} equal pieces of 'split' in {tr.where()}")
    names = tr.size_attrs(s)
    for name in names:
        tr.claim(name, [pieces[0]], "int")
    if names:
        return
    names = tr.size_attrs(c)  # e.g. CrossStage: x.split(self.expand_chs // 2)
    for name in names:
        tr.claim(name, [lab.segs], "int")
    if not names:
        tr.uf.fix(lab.segs, f"fixed: 'split' in {tr.where()} takes a constant size")


def _chunk(tr: ChannelTracer, out, x, chunks, dim=0):
    """``torch.chunk``: equal pieces, tied together (a remainder keeps the widths)."""
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        _other_dim(tr, out, x, lab)
        return
    c = x.shape[d]
    size = -(-c // chunks)
    sizes = [size] * (c // size) + ([c % size] if c % size else [])
    pieces = tr.split_pieces(x, lab, sizes)
    _pieces_to(tr, out, d, pieces)
    if c % size:
        tr.uf.fix(lab.segs, f"fixed: 'chunk' in {tr.where()} leaves a remainder")
    else:
        tr.tie(pieces, f"tied: {len(pieces)} equal chunks in {tr.where()}")


def _unbind(tr: ChannelTracer, out, x, dim=0):
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        if lab is not None:
            for o in out:
                tr.set_label(o, _Label(lab.dim - (d < lab.dim), lab.segs))
        return
    tr.uf.fix(lab.segs, f"fixed: 'unbind' in {tr.where()} takes channels one by one")


def _other_dim(tr: ChannelTracer, out, x, lab: _Label | None) -> None:
    """A split along a dim that holds no channels: every piece keeps them."""
    if lab is None:
        return
    for o in out:
        tr.set_label(o, _Label(lab.dim, lab.segs))


def _narrow(tr: ChannelTracer, out, x, dim, start, length):
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        _other_dim(tr, (out,), x, lab)
        return
    _slice(tr, out, x, lab, int(start), int(start) + int(length), "'narrow'")


def _slice(tr: ChannelTracer, out, x, lab: _Label, start, stop, what: str) -> None:
    """``x[:, start:stop]`` along the channels: a split into before / kept / after, whose
    split points follow attributes that hold them or keep the channels before them."""
    c = x.shape[lab.dim]
    a, b, step = slice(start, stop).indices(c)
    b = max(a, b)
    pieces = tr.split_pieces(x, lab, [a, b - a, c - b])
    tr.set_label(out, _Label(lab.dim, pieces[1]))
    if start is not None and start < 0:
        tr.uf.fix(pieces[1] + pieces[2], f"fixed: {what} in {tr.where()} counts from the end")
    elif a > 0:
        tr.explain_offset(a, pieces[0], what)
    if stop is None or stop > c:
        return
    if stop < 0:
        tr.uf.fix(pieces[2], f"fixed: {what} in {tr.where()} counts from the end")
    elif b > 0:
        tr.explain_offset(b, pieces[0] + pieces[1], what)


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
            if isinstance(i, slice) and i == slice(None) or x.shape[in_d] == 1:
                tr.set_label(out, _Label(out_d, lab.segs))
            elif isinstance(i, slice) and i.step in (None, 1):
                _slice(tr, out, x, _Label(in_d, lab.segs), i.start, i.stop, "a channel slice")
                tr.set_label(out, _Label(out_d, tr.label(out).segs))
            else:
                raise tr.fail("indexing a channel tensor by single channels is not modelled")
            return
        in_d += 1
        out_d += 0 if isinstance(i, int) else 1


_HANDLERS = {
    "torch.nn.functional.conv2d": _conv2d,
    "torch.conv2d": _conv2d,
    "torch.nn.functional.conv1d": _conv1d,
    "torch.conv1d": _conv1d,
    "torch.nn.functional.linear": _linear,
    "torch.nn.functional.batch_norm": _batch_norm,
    "torch.nn.functional.layer_norm": _layer_norm,
    "torch.nn.functional.group_norm": _group_norm,
    "torch.cat": _cat,
    "torch.concat": _cat,
    "torch.concatenate": _cat,
    "torch.stack": _stack,
    "torch.Tensor.permute": _permute,
    "torch.permute": _permute,
    "torch.Tensor.transpose": _transpose,
    "torch.transpose": _transpose,
    "torch.Tensor.__getitem__": _getitem,
    "torch.Tensor.split": _split,
    "torch.functional.split": _split,
    "torch.split": _split,
    "torch.Tensor.chunk": _chunk,
    "torch.chunk": _chunk,
    "torch.Tensor.unbind": _unbind,
    "torch.unbind": _unbind,
    "torch.Tensor.narrow": _narrow,
    "torch.narrow": _narrow,
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


__all__ = ["ChannelTracer", "RawAttr", "RawLayer", "TraceResult", "trace_channels"]
