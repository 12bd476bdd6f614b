"""The structure of a width space as data: channel groups, the layers over them, and the
module attributes that hold the sizes of channel splits.

A **group** is a set of channels that must keep one width: a residual stream and every conv that
adds into it, a depthwise conv and its producer, an SE gate and the channels it multiplies, a norm
and its conv. Groups fixed by the outside world (image channels, classes) are ``fixed``.

Grouped convolutions keep their number of groups (ResNeXt's cardinality, RegNet's groups at the
base width): their input and output channels are free groups like a dense conv's, both multiples
of the groups count (``Group.multiple_of``), and their cost is ``k·w_in·w_out/groups``. This is
Torch-Pruning's coupling too. Depthwise convolutions (one channel per group) are the exception:
their groups count *is* their width, so their output channels are their input's group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Protocol

from widthsearch.space.cost import Posynomial, monomial

LayerKind = Literal[
    "conv", "depthwise", "grouped", "linear", "norm", "scale", "filter", "chanconv", "pool"
]
WEIGHT_KINDS = ("conv", "depthwise", "grouped", "linear")
"""Layer kinds with a weight tensor: SynExp's densities count them (the weights SynFlow prunes),
and so do the weight terms of the latency model."""


@dataclass(frozen=True)
class Group:
    """A set of channels that share one width."""

    id: int
    width: int
    """Base width (channels) in the unchanged model."""
    fixed: bool
    """Width set by the outside world (input channels, outputs): never changed."""
    multiple_of: int
    """Every width must be a multiple of this (groups of grouped convs, GroupNorm groups)."""
    layers: tuple[str, ...]
    """Names of the layers that read or write these channels, in execution order."""
    producer: str
    """The layer that first writes these channels (``"input"`` for the model input)."""
    note: str = ""
    """Why the group is fixed or tied beyond its layers (a split at a constant size, equal
    chunks of one tensor), for ``inspect``; empty for most groups."""


@dataclass(frozen=True)
class Layer:
    """A weight-carrying op, with the groups it reads and writes and its base costs.

    Kinds: ``conv``, ``grouped``, ``depthwise`` (one input channel per conv group; with a
    channel multiplier its output groups repeat its input groups), ``linear``, ``norm``,
    ``scale`` (a loose per-channel parameter), ``filter`` (a depthwise conv with a fixed filter
    from a buffer, ``BlurPool2d``: MACs but no parameters) and ``chanconv`` (a one-channel
    Conv1d along the channel axis, ECA: MACs grow with the width, parameters do not) and
    ``pool`` (a matmul that pools each channel over positions with channel-free weights,
    GlobalContext: MACs but no parameters).
    """

    name: str
    """Module path (``scale``: the parameter path; ``filter``: the buffer path; ``pool``: the
    module path and ``.matmul``)."""
    kind: LayerKind
    in_groups: tuple[int, ...]
    """Groups of the input channels, in order (several after a channel ``torch.cat``)."""
    out_groups: tuple[int, ...]
    kernel: tuple[int, ...] = ()
    groups: int = 1
    """Conv groups at the base width; kept by grouped convs, equal to the width for depthwise."""
    channels_per_group: int = 1
    out_size: tuple[int, ...] = ()
    """Spatial size of the output (conv) or its non-channel dims (linear)."""
    positions: int = 0
    """Output positions per channel at the example input: MACs per weight."""
    per_channel: int = 0
    """norm/scale: parameters per channel."""
    param_dim: int = 0
    """scale: the dim of the parameter that holds channels."""
    constant: int = 0
    """chanconv: its parameters, which no width changes."""
    param_attrs: tuple[tuple[str, str], ...] = ()
    """``(role, attribute)`` of the module's parameters, e.g. ``(("weight", "weight"),)``."""
    params: int = 0
    """Parameters at the base widths."""
    macs: int = 0
    """MACs at the base widths."""
    train_only: bool = False
    """Runs only in training (an auxiliary head): its parameters count, and it is resized with
    everything else, but its MACs do not (MACs are those of an eval forward pass)."""

    @property
    def has_bias(self) -> bool:
        return any(role == "bias" for role, _ in self.param_attrs)

    def param_cost(self) -> Posynomial:
        """Parameters of this layer as a posynomial of group widths."""
        if self.kind in ("norm", "scale"):
            return Posynomial.from_terms((self.per_channel, monomial(g)) for g in self.in_groups)
        if self.kind in ("filter", "chanconv", "pool"):
            return Posynomial.from_terms([(self.constant, ())])
        k = 1
        for s in self.kernel:
            k *= s
        terms = [(int(self.has_bias), monomial(b)) for b in self.out_groups]
        return Posynomial.from_terms(terms) + self._weight_terms(k)

    def _weight_terms(self, k: int) -> Posynomial:
        if self.kind in ("depthwise", "filter", "chanconv", "pool"):  # one per output channel
            return Posynomial.from_terms((k, monomial(b)) for b in self.out_groups)
        coef = Fraction(k, self.groups) if self.groups > 1 else k
        return Posynomial.from_terms(
            (coef, monomial(a, b)) for a in self.in_groups for b in self.out_groups
        )

    def mac_cost(self) -> Posynomial:
        """MACs of this layer as a posynomial of group widths (none for a train-only one)."""
        if self.kind in ("norm", "scale") or self.train_only:
            return Posynomial()
        k = self.positions
        for s in self.kernel:
            k *= s
        return self._weight_terms(k)


@dataclass(frozen=True)
class SizeAttr:
    """A module attribute that a channel split reads its sizes from: ``GhostModule.out_chs``
    (the channels a slice keeps), ``MixedConv2d.splits`` (the size of each piece),
    ``CrossStage.expand_chs`` (the width it halves). Realization sets it at the new widths.
    """

    module: str
    attr: str
    container: str
    """``"int"`` for one number, else the type of the sequence (``"tuple"`` or ``"list"``)."""
    parts: tuple[tuple[int, ...], ...]
    """Per number, the groups whose widths add up to it."""

    @property
    def name(self) -> str:
        return f"{self.module}.{self.attr}" if self.module else self.attr

    def value(self, widths: Sequence[int]) -> int | list[int]:
        """The attribute's value at ``widths`` (a list for a sequence)."""
        values = [sum(widths[g] for g in part) for part in self.parts]
        return values[0] if self.container == "int" else values


class SpaceView(Protocol):
    """What realization and the layer table read of a
    :class:`~widthsearch.space.width_space.WidthSpace`.

    A protocol, so that :mod:`widthsearch.space.realize` and :mod:`widthsearch.space.layer_table`
    need not import the width space, which imports them to analyse and realize.
    """

    @property
    def model(self) -> str: ...
    @property
    def groups(self) -> tuple[Group, ...]: ...
    @property
    def layers(self) -> tuple[Layer, ...]: ...
    @property
    def size_attrs(self) -> tuple[SizeAttr, ...]: ...
    @property
    def timm_kwargs(self) -> Mapping[str, Any]: ...
    @property
    def base_widths(self) -> tuple[int, ...]: ...
    def params(self, widths: Sequence[int]) -> int: ...


__all__ = ["WEIGHT_KINDS", "Group", "Layer", "LayerKind", "SizeAttr", "SpaceView"]
