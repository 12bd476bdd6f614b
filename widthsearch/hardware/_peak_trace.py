"""The peak-memory tracer: storages alive op by op in an eval forward, counted and labelled.

Heavy (torch at its top): :func:`count_peak` is the reference count on a realized model and
:func:`trace_peak` the channel analysis run for real that
:func:`widthsearch.hardware.peak_memory.peak_memory` turns into a peak of posynomials (its
module docstring has the definition). That module imports this one when it needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from widthsearch.errors import UnsupportedModelError
from widthsearch.space._ops import tensors_in
from widthsearch.space._optrace import run_traced
from widthsearch.space._trace import ChannelTracer
from widthsearch.space.cost import Monomial, Posynomial, monomial

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace


def _owned(model: nn.Module) -> set[int]:
    owned = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return owned | {b.untyped_storage().data_ptr() for b in model.buffers()}


@dataclass
class _Lives:
    """Each storage's birth and last use (op indices) and size, as the pass goes."""

    owned: set[int]
    step: int = 0
    born: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    elements: dict[int, int] = field(default_factory=dict)
    keep: list[torch.Tensor] = field(default_factory=list)
    """Every tensor seen, so that no storage address is reused during the pass."""

    def _see(self, t: torch.Tensor, born: int) -> int | None:
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr in self.owned or s.nbytes() == 0:
            return None
        if ptr not in self.born:
            self.born[ptr] = born
            self.elements[ptr] = s.nbytes() // t.element_size()
            self.keep.append(t)
        return ptr

    def image(self, x: torch.Tensor) -> None:
        """The model's input: alive from the first op."""
        self._see(x, 0)

    def op(self, inputs: Iterable[torch.Tensor], outputs: list[torch.Tensor]) -> int | None:
        """Record one op (one that returns tensors); its index."""
        if not outputs:
            return None
        t = self.step
        self.step += 1
        for x in (*inputs, *outputs):
            ptr = self._see(x, t if any(x is o for o in outputs) else 0)
            if ptr is not None:
                self.last[ptr] = max(self.last.get(ptr, t), t)
        return t

    def finish(self, out: Any) -> None:
        """The model's outputs stay alive to the end."""
        for o in tensors_in((out,)):
            ptr = self._see(o, self.step)
            if ptr is not None:
                self.last[ptr] = max(self.step - 1, 0)

    def peak(self) -> int:
        """The largest sum of alive storages' elements over the ops."""
        best = 0
        for members in self.moments():
            best = max(best, sum(self.elements[p] for p in members))
        return best

    def moments(self) -> list[frozenset[int]]:
        """The storages alive at each op."""
        start: dict[int, list[int]] = {}
        end: dict[int, list[int]] = {}
        for ptr, b in self.born.items():
            start.setdefault(b, []).append(ptr)
            end.setdefault(self.last.get(ptr, b), []).append(ptr)
        alive: set[int] = set()
        out = []
        for t in range(max(self.step, 1)):
            alive.update(start.get(t, ()))
            out.append(frozenset(alive))
            alive.difference_update(end.get(t, ()))
        return out


class _Counter(TorchFunctionMode):
    """The reference count: every op of a plain forward, no analysis."""

    def __init__(self, lives: _Lives) -> None:
        super().__init__()
        self.lives = lives

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.lives.op(tensors_in((*args, kwargs)), tensors_in((out,)))
        return out


def count_peak(model: nn.Module, example_input: torch.Tensor, activation_bytes: int) -> int:
    """Peak bytes alive in one eval forward of ``model`` (buffers restored afterwards)."""
    was_training = model.training
    model.eval()
    lives = _Lives(_owned(model))
    lives.image(example_input)
    try:
        with torch.no_grad(), _Counter(lives):
            out = model(example_input)
        lives.finish(out)
    finally:
        model.train(was_training)
    return lives.peak() * activation_bytes


class _PeakTracer(ChannelTracer):
    """The channel analysis run for real, recording the storages alive at each op."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, compute=True)
        self.lives = _Lives(_owned(model))
        self.covering: dict[int, tuple[tuple[int, ...], int]] = {}
        """storage address -> (channel nodes, elements per channel) of a tensor covering it"""

    def set_label(self, t: torch.Tensor, lab: Any) -> None:
        super().set_label(t, lab)
        s = t.untyped_storage()
        channels = t.shape[lab.dim]
        elements = s.nbytes() // t.element_size() if t.element_size() else 0
        if channels and t.numel() == elements > 0:
            self.covering.setdefault(s.data_ptr(), (lab.segs, elements // channels))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = super().__torch_function__(func, types, args, kwargs)
        self.lives.op(tensors_in((*args, kwargs)), tensors_in((out,)))
        return out


def trace_peak(space: WidthSpace, activation_bytes: int) -> tuple[tuple[Posynomial, ...], int]:
    """The bytes alive at every op of an eval forward of ``space``'s model at batch 1, as
    posynomials of the widths (those another dominates left out), and the number of ops.

    Raises:
        UnsupportedModelError: the model cannot run a forward pass, or the count on a realized
            model at other widths differs from the prediction.
    """
    tracer_box: list[_PeakTracer] = []

    def make(model: nn.Module) -> _PeakTracer:
        tracer = _PeakTracer(model)
        tracer_box.append(tracer)
        return tracer

    def record_image(tracer: _PeakTracer) -> Any:
        return _ImageHook(tracer)

    tracer, groups_of = run_traced(
        space,
        make,
        train=False,
        context=record_image,
        what="count its peak activation memory",
    )
    lives = tracer.lives
    size: dict[int, list[tuple[int | Fraction, Monomial]]] = {}
    for ptr, elements in lives.elements.items():
        if ptr in tracer.covering:
            segs, per = tracer.covering[ptr]
            size[ptr] = [(per * activation_bytes, monomial(g)) for g in groups_of(segs)]
        else:
            size[ptr] = [(elements * activation_bytes, ())]
    moments = _undominated(lives.moments())
    parts = tuple(
        Posynomial.from_terms(term for ptr in members for term in size[ptr]) for members in moments
    )
    _check(space, parts, activation_bytes)
    return parts, lives.step


class _ImageHook:
    """Records the model's input as the first storage alive (entered around the forward)."""

    def __init__(self, tracer: _PeakTracer) -> None:
        self.tracer = tracer
        self._pre: Any = None

    def __enter__(self) -> _ImageHook:
        def first(module: nn.Module, args: Any) -> None:
            if not self.tracer.lives.born:
                for x in tensors_in((args,)):
                    self.tracer.lives.image(x)

        self._pre = nn.modules.module.register_module_forward_pre_hook(first)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pre.remove()


def _undominated(moments: list[frozenset[int]]) -> list[frozenset[int]]:
    """The distinct sets of alive storages that no other set contains (a subset's sum is never
    larger, every size being non-negative at every width)."""
    distinct = sorted(set(moments), key=len, reverse=True)
    kept: list[frozenset[int]] = []
    for m in distinct:
        if not any(m <= k for k in kept):
            kept.append(m)
    return kept


def _check(space: WidthSpace, parts: tuple[Posynomial, ...], activation_bytes: int) -> None:
    """Count the realized model at other widths than the base and refuse a mismatch."""
    widths = list(space.base_widths)
    for g in space.free_groups:
        widths[g.id] = g.width + g.multiple_of * (1 + g.id % 3)
    model = space.realize(widths)
    example = torch.zeros(1, *space.input_size)
    counted = count_peak(model, example, activation_bytes)
    predicted = max(p(widths) for p in parts)
    if counted != predicted:
        raise UnsupportedModelError(
            f"{space.model}'s peak activation memory cannot be modelled: at other widths one "
            f"pass holds {counted:,} bytes at its peak, not the {predicted:,} predicted (a "
            "tensor whose size the channel analysis does not explain)"
        )


__all__ = ["count_peak", "trace_peak"]
