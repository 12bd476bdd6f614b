"""The channel tracer's state and generic rules, without its dispatch.

:class:`TracerBase` holds the labels of channel tensors, the union-find nodes, the parameters
and buffers of the model and the stack of running modules, with the bookkeeping the per-op rules
(:mod:`widthsearch.space._layer_rules`, :mod:`widthsearch.space._channel_rules`) call, and the
rules for ops no table names: views, elementwise and broadcasting ops, pooling-like ops, loose
per-channel parameters. :class:`widthsearch.space._trace.ChannelTracer` adds the dispatch that
hands every torch function to its rule.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from widthsearch.errors import UnsupportedModelError
from widthsearch.space._nodes import UnionFind
from widthsearch.space._ops import EXPANDS, tensors_in
from widthsearch.space._records import Label, RawAttr, RawLayer, TraceResult
from widthsearch.space._shapes import broadcast


class TracerBase(TorchFunctionMode):
    """What the per-op rules read and change while the model runs; see the module docstring.

    ``compute=True`` runs convolutions, norms and activations for real instead of shape-only,
    so that autograd can record the pass (:mod:`widthsearch.hardware.memory` counts what it saves).
    """

    def __init__(self, model: nn.Module, *, compute: bool = False) -> None:
        super().__init__()
        self.compute = compute
        self.uf = UnionFind()
        self.layers: list[RawLayer] = []
        self.attrs: dict[tuple[str, str], RawAttr] = {}
        self._labels: dict[int, Label] = {}
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
        self._consumed: set[str] = set()  # in any pass: the others are constant parameters
        self._consumed_now: set[str] = set()  # in this pass: a second use is weight sharing
        self._stack: list[tuple[str, str, nn.Module]] = []  # running modules: path, class, module
        self.failed_in = ""  # where the model itself raised, for the error message
        self._calls: set[str] = set()
        self._recorded: dict[str, RawLayer] = {}  # layer name -> its record, over all passes
        self._outputs: list[int] = []  # nodes of the tensors the passes returned
        self.train_pass = False  # set by begin_train_pass: layers first seen now are train-only

    # ----------------------------------------------------------------- passes
    def begin_train_pass(self, model_out: Any) -> None:
        """Start a second forward pass of the same model, in training mode, after a first one
        that returned ``model_out``.

        The nodes, layers and attributes found so far stay, and so do the widths of the first
        pass's outputs (:meth:`fix_outputs`); its tensors are let go (only the model's own
        parameters and buffers stay known). A layer that runs again meets its record: its input
        and output channels are united with those it had, so what training couples (a drop-path
        that adds into a stream) couples the groups; a layer first seen now (an auxiliary head)
        is recorded as train-only.
        """
        self.fix_outputs(model_out)
        self._labels.clear()
        self._keep.clear()
        self._wild.clear()
        self._pview = {i: n for i, n in self._owner.items() if n in self._params}
        self._bview = {i: n for i, n in self._owner.items() if n in self._buffers}
        self._calls.clear()
        self._consumed_now.clear()
        self._stack.clear()
        self.train_pass = True

    def add_layer(self, raw: RawLayer) -> None:
        """Record a weight-carrying op, or meet the record of a layer seen in an earlier pass
        (see :meth:`begin_train_pass`)."""
        old = self._recorded.get(raw.name)
        if old is None:
            if self.train_pass:
                raw.train_only, raw.positions = True, 0  # MACs count the eval pass
            self._recorded[raw.name] = raw
            self.layers.append(raw)
            return
        if (old.kind, old.kernel, old.groups) != (raw.kind, raw.kernel, raw.groups):
            raise self.fail(
                f"layer '{raw.name}' runs as a {raw.kind} op in training mode but as a "
                f"{old.kind} op in eval mode"
            )
        self.union_segs(old.in_segs, raw.in_segs)
        self.union_segs(old.out_segs, raw.out_segs)

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
        mode = " in training mode" if self.train_pass else ""
        return UnsupportedModelError(
            f"cannot analyse {self.where()}{mode}: {what}; widthsearch handles CNNs built from 2-D "
            "convs, norms, linear layers and elementwise ops"
        )

    # ----------------------------------------------------------------- labels
    def label(self, t: torch.Tensor) -> Label | None:
        return self._labels.get(id(t))

    def set_label(self, t: torch.Tensor, lab: Label) -> None:
        self._labels[id(t)] = lab
        self._keep.append(t)

    def label_or_fixed(self, t: torch.Tensor, dim: int) -> Label:
        """The tensor's label; an unlabelled tensor (the image) gets a fixed node at ``dim``."""
        lab = self.label(t)
        if lab is None:
            lab = Label(dim, (self.uf.add(t.shape[dim], fixed=True),))
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
            if p in self._consumed_now:
                raise self.fail(f"parameter '{p}' is used twice (weight sharing is not modelled)")
            self._consumed_now.add(p)
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

    def split_pieces(self, x: torch.Tensor, lab: Label, sizes: list[int]):
        """Cut ``x``'s channels into consecutive pieces of ``sizes``."""
        if sum(sizes) != x.shape[lab.dim]:  # pragma: no cover - torch checks the sizes
            raise self.fail(f"splits {x.shape[lab.dim]} channels into {sizes}")
        return self.uf.cut(lab.segs, sizes)

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
                self.set_label(out, Label(j, lab.segs))
                return
        lefts = {math.prod(x.shape[:a]) for a in range(d + 1)}
        rights = {math.prod(x.shape[b + 1 :]) for b in range(d, x.ndim)}
        for j, size in enumerate(o):  # merge: the channels repeat over the merged dims
            lo, hi = left[j], math.prod(o[j + 1 :])
            if lo in lefts and hi in rights and (prefix // lo) * c * (suffix // hi) == size > c:
                post = suffix // hi
                segs = tuple(s for s in lab.segs for _ in range(post)) * (prefix // lo)
                self.set_label(out, Label(j, segs))
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
                    self.set_label(out, Label(k, pieces[0]))
                    return
        raise self.fail(
            f"'{name}' reshapes {tuple(x.shape)} to {tuple(out.shape)} and mixes the channel dim "
            f"{lab.dim} with others"
        )

    def _generic(self, name: str, out: Any, args: tuple, kwargs: dict) -> None:
        tensors = tensors_in((*args, *kwargs.values()))
        if not tensors:
            return
        labeled = [(t, self._labels[id(t)]) for t in tensors if id(t) in self._labels]
        outs = tensors_in((out,))
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
        expanded = short in EXPANDS and not pviews and not bviews
        if expanded or any(id(t) in self._wild for t in tensors):
            self._wild.add(id(o))
            self._keep.append(o)

    def _elementwise(
        self,
        o: torch.Tensor,
        tensors: list[torch.Tensor],
        labeled: list[tuple[torch.Tensor, Label]],
    ) -> bool:
        """Broadcasting op: channel dims aligned from the right are one group."""
        try:
            if broadcast(tensors) != tuple(o.shape):
                return False
        except ValueError:
            return False
        od: int | None = None
        segs: tuple[int, ...] = ()  # set with od
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
        self.set_label(o, Label(od, segs))
        return True

    def _same_channels(self, o: torch.Tensor, labeled: list[tuple[torch.Tensor, Label]]) -> bool:
        """Pooling, padding, resizing: one channel input, same rank, channel count kept."""
        if len(labeled) != 1:
            return False
        t, lab = labeled[0]
        if o.ndim != t.ndim:
            return False
        if o.shape[lab.dim] == t.shape[lab.dim]:
            self.set_label(o, Label(lab.dim, lab.segs))
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
        self.add_layer(
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

    def fix_outputs(self, model_out: Any) -> None:
        """The channels of every tensor the model returned (the classes, auxiliary logits, an
        embedding) keep their widths: the outside world reads them."""
        for o in tensors_in((model_out,)):
            lab = self.label(o) if isinstance(o, torch.Tensor) else None
            if lab is not None:
                self.uf.fix(lab.segs)
                self._outputs.extend(lab.segs)

    def finish(self, model_out: Any) -> TraceResult:
        """The result of the passes run, the last of which returned ``model_out``."""
        self.fix_outputs(model_out)
        outputs = self._outputs
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
