"""The width space of a CNN: coupled channel groups, the layers over them, and their exact costs.

Everything else in widthsearch reads a :class:`WidthSpace`: the solver constrains its cost
posynomials, realization rebuilds the model at a new width vector, reports show its groups.

See :mod:`widthsearch.space.groups` for what a group and a layer are.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from widthsearch.errors import InvalidWidthsError, UnsupportedModelError
from widthsearch.space.cost import Posynomial
from widthsearch.space.groups import Group, Layer, LayerKind, SizeAttr
from widthsearch.space.source import (
    CopyFactory,
    ModelRef,
    RefFactory,
    TimmFactory,
    create_timm_model,
    example_batch,
)
from widthsearch.space.structure import structure

if TYPE_CHECKING:
    import torch
    from torch import nn

Widths = Sequence[int] | Mapping[int, int]


@runtime_checkable
class WidthFileLike(Protocol):
    """A loaded width file as :meth:`WidthSpace.realize` reads it
    (:class:`widthsearch.models.widthfile.WidthFile`): checked against the space, then its
    widths are built."""

    @property
    def widths(self) -> Sequence[int]: ...
    def check_space(self, space: WidthSpace) -> None: ...


class _SpaceOrFile:
    """:meth:`WidthSpace.realize`: a method of a space, which on the class itself also takes a
    loaded width file alone (``WidthSpace.realize(load_width_file("w.json"))``, as one writes
    it after reading a width file) and builds that file's space first."""

    def __init__(self, method: Callable[..., nn.Module]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self.__wrapped__ = method

    def __get__(
        self, space: WidthSpace | None, owner: type | None = None
    ) -> Callable[..., nn.Module]:
        if space is None:
            return self._on_class
        return types.MethodType(self._method, space)

    def _on_class(self, first: Any, *args: Any, **kwargs: Any) -> nn.Module:
        if isinstance(first, WidthSpace):  # WidthSpace.realize(space, widths)
            return self._method(first, *args, **kwargs)
        if args or kwargs or not isinstance(first, WidthFileLike) or not hasattr(first, "space"):
            raise TypeError(
                "WidthSpace.realize on the class takes one loaded width file "
                "(load_width_file(PATH)); for widths, call it on a space: space.realize(widths)"
            )
        return self._method(first.space(), first)


@dataclass(frozen=True)
class WidthSpace:
    """Channel groups, layers and exact costs of one model at one input size.

    Build it with :meth:`from_ref` (a timm name or ``FILE.py:NAME``), :meth:`from_timm` or
    :meth:`from_module`; evaluate costs with :meth:`params`
    and :meth:`macs`; build the model at new widths with :meth:`realize`.

    Example:
        >>> space = WidthSpace.from_timm("resnet18", input_size=(3, 64, 64))
        >>> space.params() == sum(p.numel() for p in space.realize().parameters())
        True
    """

    model: str
    """The model reference (:meth:`ModelRef.describe`: a timm name or ``FILE.py:NAME``), or
    the module's class name for :meth:`from_module`."""
    input_size: tuple[int, ...]
    groups: tuple[Group, ...]
    layers: tuple[Layer, ...]
    constant_params: Mapping[str, int] = field(default_factory=dict)
    """Parameters no width reaches (unused or width-independent), by name: never resized."""
    size_attrs: tuple[SizeAttr, ...] = ()
    """Module attributes that hold the sizes of channel splits, set on realization."""
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """The kwargs the model was built with: for ``timm.create_model``, or for the factory of
    a model reference (:attr:`ref`)."""
    outputs: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The model's output at the example input in eval and in training mode (``{"eval": ...,
    "train": ...}``), its tensors empty ones of their shape on the meta device: what training
    may read of it (:mod:`widthsearch.train.output`)."""
    _factory: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_timm(
        cls, name: str, *, input_size: Sequence[int] = (3, 224, 224), **timm_kwargs: Any
    ) -> WidthSpace:
        """Analyse the timm model ``name`` (never with pretrained weights) at ``input_size``.

        Args:
            name: a timm model name, e.g. ``"efficientnet_b0"``.
            input_size: ``(C, H, W)`` of one image; MACs and feature-map sizes are counted at it.
            **timm_kwargs: keyword arguments for ``timm.create_model`` (``num_classes``,
                ``in_chans``, ...); the costs are those of the model they build.

        Returns:
            The model's width space: its channel groups, layers and exact cost posynomials.

        Raises:
            UnknownModelError: ``name`` is not a timm model; the message names close matches.
            UnsupportedModelError: a module or op of the model cannot be analysed.
        """
        model = create_timm_model(name, **timm_kwargs)
        factory = TimmFactory(name, dict(timm_kwargs))
        return cls._analyse(model, example_batch(input_size), name, factory, dict(timm_kwargs))

    @classmethod
    def from_ref(
        cls,
        model: str | ModelRef,
        *,
        input_size: Sequence[int] = (3, 224, 224),
        **kwargs: Any,
    ) -> WidthSpace:
        """Analyse the model of a reference at ``input_size``: a timm name (as
        :meth:`from_timm`), ``path/to/file.py:NAME`` or ``package.module:NAME``, ``NAME`` a
        class or function returning an ``nn.Module``, called with ``kwargs`` (on top of a
        :class:`ModelRef`'s own).

        Example:
            >>> space = WidthSpace.from_ref("nets.py:TinyNet", input_size=(3, 32, 32), width=16)

        Raises:
            ModelRefError: no such file, module or name; a file that fails to import.
            ModelFactoryError: the factory raised or returned something not an ``nn.Module``.
            UnknownModelError, UnsupportedModelError: as for :meth:`from_timm`.
        """
        ref = model if isinstance(model, ModelRef) else ModelRef.parse(model)
        ref = ModelRef(ref.kind, ref.target, ref.name, {**ref.kwargs, **kwargs})
        if ref.is_timm:
            return cls.from_timm(ref.target, input_size=input_size, **dict(ref.kwargs))
        built = ref.build()
        factory = RefFactory(ref)
        batch = example_batch(input_size)
        return cls._analyse(built, batch, ref.describe(), factory, dict(ref.kwargs))

    @property
    def ref(self) -> ModelRef:
        """The model reference of this space (from :attr:`model` and :attr:`timm_kwargs`)."""
        return ModelRef.parse(self.model, self.timm_kwargs)

    @classmethod
    def from_module(
        cls, model: nn.Module, example_input: torch.Tensor, *, name: str | None = None
    ) -> WidthSpace:
        """Analyse any ``nn.Module`` by running it once on ``example_input``.

        Costs are for one forward pass of ``example_input`` (use batch size 1 for per-image
        MACs). :meth:`realize` starts from a copy of ``model`` taken when it is called, so keep
        ``model`` unchanged while you use the space.

        Args:
            model: the network; it is run once and left as it was.
            example_input: a batch the model accepts, e.g. ``torch.randn(1, 3, 224, 224)``.
            name: the name the space and its width files carry (default: the class name).

        Returns:
            The model's width space.

        Raises:
            UnsupportedModelError: a module or op cannot be analysed, or the model does not
                rebuild at other widths (the message names the module).
        """
        factory = CopyFactory(model)
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
        groups, layers, attrs = structure(result)
        check_resizable(model, layers)
        space = cls(
            model=name,
            input_size=tuple(example_input.shape[1:]),
            groups=groups,
            layers=layers,
            constant_params=dict(result.constant_params),
            size_attrs=attrs,
            timm_kwargs=timm_kwargs,
            outputs=result.outputs,
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
            for key, w in widths.items():
                if not 0 <= int(key) < len(full):
                    raise InvalidWidthsError(f"no group {key}: {self.model} has {len(full)} groups")
                full[int(key)] = w
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
        """Exact parameter count of the model at ``widths`` (default: base widths).

        Args:
            widths: a width per group, or a partial ``{group id: width}``; None: the base.

        Returns:
            What ``sum(p.numel() for p in model.parameters())`` counts on the realized model.

        Raises:
            InvalidWidthsError: a width that is not a positive integer, breaks a fixed group or
                is not a multiple of its group's ``multiple_of``.
        """
        return self.param_cost(self.widths(widths))

    def macs(self, widths: Widths | None = None) -> int:
        """Exact MACs of the model at ``widths`` (default: base widths).

        Args:
            widths: as for :meth:`params`.

        Returns:
            Multiply-accumulates of convs and linear layers for one forward pass of the example
            input (``FlopCounterMode``'s total / 2).

        Raises:
            InvalidWidthsError: as for :meth:`params`.
        """
        return self.mac_cost(self.widths(widths))

    # ------------------------------------------------------------------ models
    def _realize(self, widths: Widths | WidthFileLike | None = None) -> nn.Module:
        """A new model at ``widths``, freshly initialized with its family's own init.

        ``widths`` may also be a loaded width file called on the class:
        ``WidthSpace.realize(load_width_file("w.json"))`` builds the file's width space first
        (:meth:`WidthFile.space`), then the model.

        Args:
            widths: a width vector, a partial ``{group id: width}``, or a loaded width file
                (:func:`widthsearch.models.widthfile.load_width_file`) made for this model;
                None: the base widths.

        Returns:
            A new ``nn.Module`` whose params and MACs equal :meth:`params` and :meth:`macs`.

        Raises:
            InvalidWidthsError: widths this space does not take (see :meth:`params`).
            WidthFileError: a width file made for another model or width space.
        """
        from widthsearch.space.realize import realize

        if isinstance(widths, WidthFileLike):
            widths.check_space(self)
            widths = widths.widths
        if self._factory is None:  # pragma: no cover - only for hand-built spaces
            raise UnsupportedModelError("this width space has no model to realize")
        return realize(self._factory(), self, self.widths(widths))

    realize = _SpaceOrFile(_realize)

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
                    **({"train_only": True} if lay.train_only else {}),
                }
                for lay in self.layers
            ],
            "constant_params": dict(self.constant_params),
            "size_attrs": [
                {"name": a.name, "value": a.value(self.base_widths), "groups": list(a.parts)}
                for a in self.size_attrs
            ],
        }


__all__ = [
    "Group",
    "Layer",
    "LayerKind",
    "ModelRef",
    "SizeAttr",
    "WidthFileLike",
    "WidthSpace",
    "Widths",
    "create_timm_model",
]
