"""The width space of a CNN: coupled channel groups, the layers over them, and their exact costs.

Everything else in widthsearch reads a :class:`WidthSpace`: the solver constrains its cost
posynomials, realization rebuilds the model at a new width vector, reports show its groups.

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

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from widthsearch.errors import InvalidWidthsError, UnknownModelError, UnsupportedModelError
from widthsearch.space.cost import Posynomial, monomial

if TYPE_CHECKING:
    import torch
    from torch import nn

    from widthsearch.models.widthfile import WidthFile
    from widthsearch.space._trace import TraceResult

LayerKind = Literal[
    "conv", "depthwise", "grouped", "linear", "norm", "scale", "filter", "chanconv", "pool"
]
WEIGHT_KINDS = ("conv", "depthwise", "grouped", "linear")
"""Layer kinds with a weight tensor: SynExp's densities count them (the weights SynFlow prunes),
and so do the weight terms of the latency model."""
Widths = Sequence[int] | Mapping[int, int]


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
        """MACs of this layer as a posynomial of group widths."""
        if self.kind in ("norm", "scale"):
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


@dataclass(frozen=True)
class WidthSpace:
    """Channel groups, layers and exact costs of one model at one input size.

    Build it with :meth:`from_timm` or :meth:`from_module`; evaluate costs with :meth:`params`
    and :meth:`macs`; build the model at new widths with :meth:`realize`.

    Example:
        >>> space = WidthSpace.from_timm("resnet18", input_size=(3, 64, 64))
        >>> space.params() == sum(p.numel() for p in space.realize().parameters())
        True
    """

    model: str
    """timm model name (or the module's class name for :meth:`from_module`)."""
    input_size: tuple[int, ...]
    groups: tuple[Group, ...]
    layers: tuple[Layer, ...]
    constant_params: Mapping[str, int] = field(default_factory=dict)
    """Parameters no width reaches (unused or width-independent), by name: never resized."""
    size_attrs: tuple[SizeAttr, ...] = ()
    """Module attributes that hold the sizes of channel splits, set on realization."""
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    _factory: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_timm(
        cls, name: str, *, input_size: Sequence[int] = (3, 224, 224), **timm_kwargs: Any
    ) -> WidthSpace:
        """Analyse the timm model ``name`` (never with pretrained weights) at ``input_size``.

        Raises:
            UnknownModelError: ``name`` is not a timm model; the message names close matches.
            UnsupportedModelError: a module or op of the model cannot be analysed.
        """
        model = create_timm_model(name, **timm_kwargs)
        factory = _TimmFactory(name, dict(timm_kwargs))
        return cls._analyse(model, _example_input(input_size), name, factory, dict(timm_kwargs))

    @classmethod
    def from_module(
        cls, model: nn.Module, example_input: torch.Tensor, *, name: str | None = None
    ) -> WidthSpace:
        """Analyse any ``nn.Module`` by running it once on ``example_input``.

        Costs are for one forward pass of ``example_input`` (use batch size 1 for per-image
        MACs). :meth:`realize` starts from a copy of ``model`` taken when it is called, so keep
        ``model`` unchanged while you use the space.
        """
        factory = _CopyFactory(model)
        return cls._analyse(model, example_input, name or type(model).__name__, factory, {})

    @classmethod
    def _analyse(
        cls,
        model: nn.Module,
        example_input: torch.Tensor,
        name: str,
        factory: Callable[[], nn.Module],
        timm_kwargs: dict[str, Any],
    ) -> WidthSpace:
        """Trace ``model``, build the space, and refuse it unless it also realizes at other
        widths (``model`` is resized for that check and restored)."""
        from widthsearch.space._trace import trace_channels
        from widthsearch.space.realize import check_realizes, check_resizable

        result = trace_channels(model, example_input)
        groups, layers, attrs = _structure(result)
        check_resizable(model, layers)
        space = cls(
            model=name,
            input_size=tuple(example_input.shape[1:]),
            groups=groups,
            layers=layers,
            constant_params=dict(result.constant_params),
            size_attrs=attrs,
            timm_kwargs=timm_kwargs,
            _factory=factory,
        )
        counted = sum(p.numel() for p in model.parameters())
        if space.params() != counted:  # pragma: no cover - a bug in the analysis, not in the input
            raise UnsupportedModelError(
                f"cost model of {space.model} gives {space.params()} params but the model has "
                f"{counted}; please report this model"
            )
        check_realizes(space, model, example_input)
        return space

    # ------------------------------------------------------------------ widths
    @property
    def base_widths(self) -> tuple[int, ...]:
        return tuple(g.width for g in self.groups)

    @property
    def free_groups(self) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if not g.fixed)

    def widths(self, widths: Widths | None = None) -> tuple[int, ...]:
        """A full, checked width vector from a sequence or a partial ``{group id: width}``.

        Raises:
            InvalidWidthsError: wrong length, a non-positive width, a changed fixed group, or a
                width that is not a multiple of its group's ``multiple_of``.
        """
        if widths is None:
            return self.base_widths
        if isinstance(widths, Mapping):
            full = list(self.base_widths)
            for g, w in widths.items():
                if not 0 <= int(g) < len(full):
                    raise InvalidWidthsError(f"no group {g}: {self.model} has {len(full)} groups")
                full[int(g)] = w
            widths = full
        widths = tuple(widths)
        if len(widths) != len(self.groups):
            raise InvalidWidthsError(
                f"{len(widths)} widths given but {self.model} has {len(self.groups)} groups"
            )
        for g, w in zip(self.groups, widths, strict=True):
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise InvalidWidthsError(f"group {g.id}: width {w!r} is not a positive integer")
            if g.fixed and w != g.width:
                raise InvalidWidthsError(
                    f"group {g.id} ({g.producer}) is fixed at {g.width}, not {w}"
                )
            if w % g.multiple_of:
                raise InvalidWidthsError(
                    f"group {g.id} ({g.producer}): width {w} is not a multiple of {g.multiple_of}"
                )
        return widths

    # ------------------------------------------------------------------ costs
    @cached_property
    def param_cost(self) -> Posynomial:
        """Parameters as a posynomial of group widths (constant parameters included)."""
        const = [(sum(self.constant_params.values()), ())]
        return Posynomial.from_terms(
            const + [(c, m) for layer in self.layers for m, c in layer.param_cost().terms]
        )

    @cached_property
    def mac_cost(self) -> Posynomial:
        """MACs of one forward pass of the example input as a posynomial of group widths."""
        return Posynomial.from_terms(
            (c, m) for layer in self.layers for m, c in layer.mac_cost().terms
        )

    def params(self, widths: Widths | None = None) -> int:
        """Exact parameter count of the model at ``widths`` (default: base widths)."""
        return self.param_cost(self.widths(widths))

    def macs(self, widths: Widths | None = None) -> int:
        """Exact MACs of the model at ``widths`` (default: base widths)."""
        return self.mac_cost(self.widths(widths))

    # ------------------------------------------------------------------ models
    def realize(self, widths: Widths | WidthFile | None = None) -> nn.Module:
        """A new model at ``widths``, freshly initialized with its family's own init.

        ``widths`` is a width vector, a partial ``{group id: width}``, or a loaded width file
        (:func:`widthsearch.models.widthfile.load_width_file`) made for this model.
        """
        from widthsearch.models.widthfile import WidthFile
        from widthsearch.space.realize import realize

        if isinstance(widths, WidthFile):
            widths.check_space(self)
            widths = widths.widths
        if self._factory is None:  # pragma: no cover - only for hand-built spaces
            raise UnsupportedModelError("this width space has no model to realize")
        return realize(self._factory(), self, self.widths(widths))

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the group and layer structure: equal spaces, equal fingerprints.

        Width files record it, so a file made with another timm version is accepted exactly
        when that version still parses the model into the same width space.
        """
        import hashlib
        import json

        structure = [
            [[g.width, g.fixed, g.multiple_of, g.producer] for g in self.groups],
            [
                [lay.name, lay.kind, lay.in_groups, lay.out_groups, lay.kernel, lay.groups]
                for lay in self.layers
            ],
        ]
        if self.size_attrs:  # only models with splits: older fingerprints stay valid
            structure.append([[a.name, a.container, a.parts] for a in self.size_attrs])
        return hashlib.sha256(json.dumps(structure).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``widthsearch inspect --json`` prints)."""
        params, macs = self.params(), self.macs()
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "timm_kwargs": dict(self.timm_kwargs),
            "params": params,
            "macs": macs,
            "groups": [
                {
                    "id": g.id,
                    "width": g.width,
                    "fixed": g.fixed,
                    "multiple_of": g.multiple_of,
                    "producer": g.producer,
                    "note": g.note,
                    "layers": list(g.layers),
                    "params_share": self.param_cost.involving(g.id)(self.base_widths) / params,
                    "macs_share": (self.mac_cost.involving(g.id)(self.base_widths) / macs)
                    if macs
                    else 0.0,
                }
                for g in self.groups
            ],
            "layers": [
                {
                    "name": lay.name,
                    "kind": lay.kind,
                    "in_groups": list(lay.in_groups),
                    "out_groups": list(lay.out_groups),
                    "kernel": list(lay.kernel),
                    "groups": lay.groups,
                    "out_size": list(lay.out_size),
                    "params": lay.params,
                    "macs": lay.macs,
                }
                for lay in self.layers
            ],
            "constant_params": dict(self.constant_params),
            "size_attrs": [
                {"name": a.name, "value": a.value(self.base_widths), "groups": list(a.parts)}
                for a in self.size_attrs
            ],
        }


# ---------------------------------------------------------------------- helpers
def _structure(
    result: TraceResult,
) -> tuple[tuple[Group, ...], tuple[Layer, ...], tuple[SizeAttr, ...]]:
    """Groups, layers (with their base costs) and split-size attributes of a traced model."""
    uf = result.uf
    ids = {root: i for i, root in enumerate(result.group_roots())}
    members: dict[int, list[str]] = {i: [] for i in ids.values()}
    producers: dict[int, str] = {}

    def gid(node: int) -> int:
        return ids[uf.find(node)]

    layers = []
    for raw in result.layers:
        ins = tuple(gid(s) for s in raw.in_segs)
        outs = tuple(gid(s) for s in raw.out_segs)
        for g in ins:
            producers.setdefault(g, "input")
        for g in outs:
            producers.setdefault(g, raw.name)
        for g in dict.fromkeys(ins + outs):
            members[g].append(raw.name)
        layers.append(
            Layer(
                name=raw.name,
                kind=raw.kind,  # type: ignore[arg-type]
                in_groups=ins,
                out_groups=outs,
                kernel=raw.kernel,
                groups=raw.groups,
                channels_per_group=raw.channels_per_group,
                out_size=raw.out_size,
                positions=raw.positions,
                per_channel=raw.per_channel,
                param_dim=raw.param_dim,
                constant=raw.constant,
                param_attrs=tuple(raw.params.items()),
            )
        )
    base = [uf.width[root] for root in ids]  # ids were handed out in this order
    layers = [
        replace(lay, params=lay.param_cost()(base), macs=lay.mac_cost()(base)) for lay in layers
    ]
    attrs = tuple(
        SizeAttr(
            module=a.module,
            attr=a.attr,
            container=a.container,
            parts=tuple(tuple(gid(s) for s in part) for part in a.parts),
        )
        for a in result.attrs
    )
    groups = tuple(
        Group(
            id=i,
            width=uf.width[root],
            fixed=uf.fixed[root],
            multiple_of=uf.multiple_of[root],
            layers=tuple(members[i]),
            producer=producers.get(i, "input"),
            note="; ".join(uf.notes.get(root, [])),
        )
        for root, i in ids.items()
    )
    return groups, tuple(layers), attrs


def create_timm_model(name: str, **timm_kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=False, ...)`` with a helpful unknown-name error."""
    import timm

    if not timm.is_model(name):
        names = timm.list_models()
        normal = name.strip().lower().replace("-", "_")
        close = [n for n in names if n == normal]  # efficientnet-B0 -> efficientnet_b0 first
        close += [
            n for n in difflib.get_close_matches(normal, names, n=5, cutoff=0.6) if n not in close
        ][: 5 - len(close)]
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise UnknownModelError(
            f"unknown model '{name}'{hint} (timm.list_models() lists all names)"
        )
    timm_kwargs.pop("pretrained", None)
    try:
        return timm.create_model(name, pretrained=False, **timm_kwargs)
    except TypeError as exc:
        raise UnsupportedModelError(
            f"timm cannot build '{name}' with {timm_kwargs}: {exc}"
        ) from exc


def _example_input(input_size: Sequence[int]) -> torch.Tensor:
    import torch

    size = tuple(int(s) for s in input_size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"input size must be C,H,W with positive sizes, got {input_size!r}")
    return torch.zeros(1, *size)


@dataclass(frozen=True)
class _TimmFactory:
    name: str
    kwargs: Mapping[str, Any]

    def __call__(self) -> nn.Module:
        return create_timm_model(self.name, **dict(self.kwargs))


@dataclass(frozen=True)
class _CopyFactory:
    model: nn.Module

    def __call__(self) -> nn.Module:
        return copy.deepcopy(self.model)


__all__ = [
    "Group",
    "Layer",
    "LayerKind",
    "SizeAttr",
    "WidthSpace",
    "Widths",
    "create_timm_model",
]
