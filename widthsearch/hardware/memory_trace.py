"""The memory tracer: what autograd saves in a training step, counted and labelled by group.

Heavy (it imports torch and the channel tracer at its top): :func:`saved_bytes` is the reference
count on a realized model, and :func:`trace_memory` the channel analysis run for real that
:func:`widthsearch.hardware.memory.activation_memory` turns into a posynomial (its module
docstring has the method); that function imports this module when it needs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from widthsearch.errors import UnsupportedModelError
from widthsearch.space._ops import tensors_in
from widthsearch.space._optrace import run_traced
from widthsearch.space._trace import ChannelTracer
from widthsearch.space.cost import Monomial, Posynomial, monomial

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace


def saved_bytes(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """(bytes, storages) that autograd saves for backward in one training forward of ``model``.

    The reference count: distinct storages seen by the pack hook of
    ``saved_tensors_hooks``, parameters and buffers excluded. The model runs in train mode;
    its buffers (BatchNorm statistics) are restored afterwards.
    """
    owned = _owned_storages(model)
    seen: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # keeps storages alive so their addresses stay unique

    def pack(t: torch.Tensor) -> torch.Tensor:
        keep.append(t)
        s = t.untyped_storage()
        if s.data_ptr() not in owned:
            seen.setdefault(s.data_ptr(), s.nbytes())
        return t.detach()  # see _free

    was_training = model.training
    buffers = [(b, b.clone()) for b in model.buffers()]
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
            out = model(example_input)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for b, before in buffers:
                b.copy_(before)
    del out
    keep.clear()  # see _free
    return sum(seen.values()), len(seen)


def _unpack(t: Any) -> Any:
    return t


# _free: the pack hooks here would make two reference cycles through the autograd graph, which
# Python's collector cannot see, and every pass would leak the activations it saved: an op that
# saves its own output (ReLU) would hold it through its grad_fn if the hook returned the tensor
# itself (it returns a detached alias: same storage, no grad_fn), and the tensors a hook keeps
# (so that storage addresses stay unique) hold their grad_fns, whose saved variables hold the
# hook (they are dropped after the pass).


def _owned_storages(model: nn.Module) -> set[int]:
    owned = {p.untyped_storage().data_ptr() for p in model.parameters()}
    owned |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    return owned


def trace_memory(space: WidthSpace, batch_size: int, dtype: str) -> tuple[Posynomial, int]:
    """The activation bytes of a training step of ``space``'s model at ``batch_size`` and
    ``dtype`` as a posynomial of the widths, and the number of storages autograd saves at the
    base widths (see :mod:`widthsearch.hardware.memory`).

    Raises:
        UnsupportedModelError: the model cannot run a training step at this batch size, or its
            structure in train mode differs from the analysed one.
    """

    def hooks(tracer: _MemoryTracer) -> Any:
        return torch.autograd.graph.saved_tensors_hooks(tracer.pack, _unpack)

    tracer, groups_of = run_traced(
        space,
        _MemoryTracer,
        train=True,
        batch_size=batch_size,
        dtype=dtype,
        context=hooks,
        what="count its activation memory",
    )
    tracer.resolve((), None)  # tensors saved outside any op we saw (none in the zoo)
    tracer.release()
    terms: list[tuple[int | Fraction, Monomial]] = []
    for stored in tracer.stored.values():
        if stored.segs:
            terms += [(stored.per_channel, monomial(g)) for g in groups_of(stored.segs)]
        elif stored.param:
            terms += _param_terms(space, stored)
        else:
            terms.append((stored.nbytes, ()))
    return Posynomial.from_terms(terms), len(tracer.stored)


def _param_terms(space: WidthSpace, stored: _Stored) -> list[tuple[int | Fraction, Monomial]]:
    """A storage computed from a parameter (a standardized conv weight, its statistics):
    bytes per element times the parameter's size, or its number of rows, in the widths."""
    cost = None
    for lay in space.layers:
        for role, attr in lay.param_attrs:
            if (lay.name if lay.kind == "scale" else f"{lay.name}.{attr}") != stored.param:
                continue
            if stored.rows or role == "bias" or lay.kind == "norm":
                groups = lay.in_groups if lay.kind == "norm" else lay.out_groups
                cost = Posynomial.from_terms((1, monomial(g)) for g in groups)
            elif lay.kind == "scale":
                cost = lay.param_cost()
            else:
                cost = lay._weight_terms(math.prod(lay.kernel))
    if cost is None:  # a parameter no width reaches
        return [(stored.nbytes, ())]
    base = cost(space.base_widths)
    if stored.nbytes % base:  # pragma: no cover - a storage of another size than its parameter
        raise UnsupportedModelError(
            f"{space.model} saves a tensor computed from '{stored.param}' whose size is not "
            "modelled; its activation memory cannot be counted"
        )
    return [(stored.nbytes // base * c, m) for m, c in cost.terms]


@dataclass
class _Stored:
    nbytes: int
    segs: tuple[int, ...]
    """Union-find nodes of its channels; empty: the size does not depend on any width."""
    per_channel: int
    """Bytes per channel (element size x positions)."""
    param: str = ""
    """The parameter it is computed from (weight standardization), if any."""
    rows: bool = False
    """One element per row of that parameter (the statistics of a standardized weight)."""


class _MemoryTracer(ChannelTracer):
    """The channel analysis run for real, collecting what autograd saves, op by op."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, compute=True)
        self.owned = _owned_storages(model)
        self.covering: dict[int, tuple[tuple[int, ...], int]] = {}
        """storage address -> (channel nodes, bytes per channel) of a labelled tensor covering it"""
        self.stored: dict[int, _Stored] = {}
        self.from_param: dict[int, str] = {}
        """storage address -> the parameter a tensor covering it is computed from"""
        self.pending: list[torch.Tensor] = []
        self.saved: list[torch.Tensor] = []  # keeps saved storages alive: addresses stay unique

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        self.pending.append(t)
        self.saved.append(t)
        return t.detach()  # see _free

    def release(self) -> None:
        """Drop the tensors of the pass (see ``_free``): what was counted stays."""
        self.saved.clear()
        self.pending.clear()
        self._keep.clear()
        self._labels.clear()

    def set_label(self, t: torch.Tensor, lab: Any) -> None:
        super().set_label(t, lab)
        s = t.untyped_storage()
        channels = t.shape[lab.dim]
        if t.numel() * t.element_size() == s.nbytes() > 0 and channels:
            self.covering.setdefault(s.data_ptr(), (lab.segs, s.nbytes() // channels))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        outer, self.pending = self.pending, []
        try:
            out = super().__torch_function__(func, types, args, kwargs)
            for o in tensors_in((out,)):
                pname = self._pview.get(id(o))
                s = o.untyped_storage()
                if pname and o.numel() * o.element_size() == s.nbytes() > 0:
                    self.from_param.setdefault(s.data_ptr(), pname)
            self.resolve((*args, *(kwargs or {}).values()), out)
        finally:
            self.pending = outer + self.pending
        return out

    def resolve(self, args: tuple, out: Any) -> None:
        """Account for the tensors saved during one op (inputs ``args``, output ``out``)."""
        pending, self.pending = self.pending, []
        context = [t for t in tensors_in((out,)) + tensors_in(args) if self.label(t) is not None]
        for t in pending:
            s = t.untyped_storage()
            ptr = s.data_ptr()
            if ptr in self.owned or ptr in self.stored:
                continue
            if ptr in self.covering:
                segs, per = self.covering[ptr]
                self.stored[ptr] = _Stored(s.nbytes(), segs, per)
            elif ptr in self.from_param:
                self.stored[ptr] = _Stored(s.nbytes(), (), 0, param=self.from_param[ptr])
            else:
                self.stored[ptr] = self._internal(t, s.nbytes(), context, args)

    def _internal(
        self, t: torch.Tensor, nbytes: int, context: list[torch.Tensor], args: tuple = ()
    ) -> _Stored:
        """A storage made inside an op: channels from the op's tensor of the same shape, or
        one per channel for a per-channel vector (BatchNorm's saved statistics); for an op on
        a parameter (a weight standardized by ``batch_norm``), that parameter's size or rows."""
        if t.numel() * t.element_size() == nbytes:
            for c in context:
                lab = self.label(c)
                assert lab is not None  # the context holds labelled tensors only
                channels = c.shape[lab.dim]
                if tuple(t.shape) == tuple(c.shape):
                    return _Stored(nbytes, lab.segs, nbytes // channels)
                if t.ndim == 1 and t.numel() == channels > 1:
                    return _Stored(nbytes, lab.segs, t.element_size())
            for a in tensors_in(args) if not context else ():  # an op on parameters only
                pname = self._pview.get(id(a))
                if pname is None:
                    continue
                if t.numel() == a.numel():
                    return _Stored(nbytes, (), 0, param=pname)
                if t.ndim == 1 and a.ndim > 1 and t.numel() == a.shape[1]:
                    return _Stored(nbytes, (), 0, param=pname, rows=True)
        return _Stored(nbytes, (), 0)


__all__ = ["saved_bytes", "trace_memory"]
