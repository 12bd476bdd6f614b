"""The op tracer of the latency model: the channel analysis, recording what every op touches.

Heavy (it subclasses the torch-level tracer of :mod:`widthsearch.space._trace`):
:func:`widthsearch.hardware.latency_model.op_terms` imports it inside the function that runs it.
"""

from __future__ import annotations

from typing import Any

import torch

from widthsearch.space._ops import NAMES, fname, tensors_in
from widthsearch.space._trace import ChannelTracer

_FREE_OPS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "view_as",
    "reshape_as",
    "permute",
    "transpose",
    "__getitem__",
    "dropout",
    "expand",
    "expand_as",
    "contiguous",
    "size",
    "dim",
}
"""Ops that cost no time of their own (views, shape queries, dropout at eval)."""


class OpTracer(ChannelTracer):
    """The shape-only channel analysis, recording what every op touches."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.ops: list[tuple[str, list[tuple[tuple[int, ...], int]], str]] = []
        """(category, [(channel nodes, positions per channel)], layer name or "") per op
        that costs time."""

    def elems(self, t: torch.Tensor) -> tuple[tuple[int, ...], int]:
        """The channel nodes of ``t`` and its number of positions per channel."""
        lab = self.label(t)
        assert lab is not None  # only called on labelled tensors
        return lab.segs, t.numel() // t.shape[lab.dim]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        n = len(self.layers)
        out = super().__torch_function__(func, types, args, kwargs)
        name = NAMES.get(func) or fname(func)
        short = name.rpartition(".")[2]
        if short in _FREE_OPS or short.endswith("__get__"):
            return out
        inputs = [t for t in tensors_in((*args, *kwargs.values())) if self.label(t)]
        outputs = [t for t in tensors_in((out,)) if self.label(t)]
        layer = next((lay for lay in self.layers[n:] if lay.kind not in ("norm", "scale")), None)
        if layer is not None:  # a conv, linear, filter (a computed weight may add a scale)
            kind = "conv" if layer.kind in ("conv", "grouped", "linear") else "depthwise"
            seen = [self.elems(t) for t in inputs[:1] + outputs[:1]]
            self.ops.append((kind, seen, layer.name))
        elif inputs or outputs:
            big = max(inputs + outputs, key=lambda t: t.numel())
            self.ops.append(("other", [self.elems(big)], ""))
        return out


__all__ = ["OpTracer"]
