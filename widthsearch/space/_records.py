"""What the channel tracer records: tensor labels, raw layers and attributes, the result.

All of it is plain data over :class:`~widthsearch.space._nodes.UnionFind` nodes;
:mod:`widthsearch.space.structure` turns a :class:`TraceResult` into groups and layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from widthsearch.space._nodes import UnionFind


@dataclass(frozen=True)
class Label:
    """Where a tensor holds channels: the dim, and the segments (nodes) along it in order."""

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
    train_only: bool = False  # first seen in the training-mode pass (an auxiliary head)


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
    """One traced forward pass: the nodes, the raw layers and attributes over their leaves,
    the parameters no width reaches and the nodes of the model's outputs."""

    uf: UnionFind
    layers: list[RawLayer]
    constant_params: dict[str, int]  # parameters whose size does not depend on any width
    output_nodes: list[int] = field(default_factory=list)
    attrs: list[RawAttr] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    """The model's output in each mode run (``"eval"``, ``"train"``) with its tensors as
    tensors of the same shape on the meta device: what training may read of it."""

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
