"""Realize a width space at new widths: the generic path of design.md section 4.

The model keeps its classes and its forward code; only the channel counts of its
Conv/Norm/Linear modules (and loose per-channel parameters such as ConvNeXt's layer scale)
change, and the family's own init runs again. The rebuilding itself lives in
:mod:`widthsearch.space._portable`, which exported model files carry too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from widthsearch.errors import RealizationError, UnsupportedModelError
from widthsearch.space import _portable
from widthsearch.space._trace import trace_channels
from widthsearch.space.groups import Group, Layer, SpaceView
from widthsearch.space.layer_table import family_name, layer_table
from widthsearch.space.structure import structure


def check_resizable(model: nn.Module, layers: Sequence[Layer]) -> None:
    """Fail at analysis time, not at realization, on a module we do not know how to resize."""
    wanted: dict[str, type | tuple[type, ...]] = {
        "conv": nn.Conv2d,
        "depthwise": nn.Conv2d,
        "grouped": nn.Conv2d,
        "linear": nn.Linear,
        "norm": _portable._NORMS,
    }
    for layer in layers:
        if layer.kind in ("scale", "filter", "chanconv", "pool"):  # by a parameter/buffer/none
            continue
        module = model.get_submodule(layer.name)
        if not isinstance(module, wanted[layer.kind]):
            raise UnsupportedModelError(
                f"cannot resize module '{layer.name}' of type {type(module).__name__}: it runs a "
                f"{layer.kind} op but is not a torch.nn Conv2d/Linear/BatchNorm/LayerNorm/GroupNorm"
            )


def realize(model: nn.Module, space: SpaceView, widths: Sequence[int]) -> nn.Module:
    """Resize ``model`` (a fresh base model of ``space``) to ``widths`` in place and return it.

    Raises:
        RealizationError: the built model does not have the predicted parameter count.
    """
    table = layer_table(space, widths)
    model = _portable.rebuild(model, table, dict(space.timm_kwargs), family_name(model))
    check_params(model, space, widths, "realized")
    return model


def check_params(model: nn.Module, space: SpaceView, widths: Sequence[int], how: str) -> None:
    """Raise :class:`RealizationError` unless ``model`` counts ``space.params(widths)``."""
    counted = sum(p.numel() for p in model.parameters())
    predicted = space.params(widths)
    if counted != predicted:
        raise RealizationError(
            f"the {how} {space.model} has {counted:,} params but its width space predicts "
            f"{predicted:,}; this is a widthsearch bug, please report the model and widths"
        )


# ------------------------------------------------------------------- the parse-time probe
def probe_widths(space: SpaceView) -> list[int]:
    """A width vector that moves every free group off its base width, by one to three steps
    of its grid (the step varies by group, so that groups of equal base width part)."""
    return [g.width if g.fixed else g.width + g.multiple_of * (1 + g.id % 3) for g in space.groups]


@contextmanager
def _restored(model: nn.Module) -> Iterator[nn.Module]:
    """Lend ``model`` for an in-place resize: every module's attributes, parameters, buffers
    and children are put back afterwards. Cheap (no weights are copied): the resize swaps in
    new tensors and leaves the old ones untouched."""
    saved = [
        (m, dict(vars(m)), dict(m._parameters), dict(m._buffers), dict(m._modules))
        for m in model.modules()
    ]
    try:
        yield model
    finally:
        for m, attrs, params, buffers, children in saved:
            m.__dict__.clear()
            m.__dict__.update(attrs)
            m._parameters, m._buffers, m._modules = params, buffers, children


def check_realizes(space: SpaceView, model: nn.Module, example_input: torch.Tensor) -> None:
    """Refuse, at parse time, a model that would not work once realized at other widths.

    ``model`` is rebuilt in place at :func:`probe_widths` by the generic path (new weights
    left uninitialized) and analysed again, then restored; at those widths it must run and
    parse into this space: the same layers over the same groups, with exactly the costs the
    space predicts. This catches module code that keeps the base width (a stored shape, a
    width attribute) before any user builds the model.

    Raises:
        UnsupportedModelError: in one line, naming where the realized model fails.
    """
    probe = probe_widths(space)
    if probe == list(space.base_widths):
        return
    refuse = f"'{space.model}' parses, but realized at other widths it "
    with _restored(model) as shell:
        try:
            table = layer_table(space, probe)
            _portable.rebuild(shell, table, dict(space.timm_kwargs), family_name(shell), False)
            result = trace_channels(shell, example_input, hint="")
        except UnsupportedModelError as exc:
            raise UnsupportedModelError(f"{refuse}fails: {exc}") from exc
        except Exception as exc:  # the resize itself failed
            raise UnsupportedModelError(
                f"{refuse}cannot be rebuilt ({type(exc).__name__}: {exc}); widthsearch cannot "
                "change this model's widths"
            ) from exc
        counted = sum(p.numel() for p in shell.parameters())
    groups, layers, attrs = structure(result)
    problem = _compare(space, probe, groups, layers)
    if problem is None and [(a.name, a.parts) for a in attrs] != [
        (a.name, a.parts) for a in space.size_attrs
    ]:
        problem = "reads its split sizes from other attributes"
    if problem is None and counted != space.params(probe):
        problem = f"has {counted} params, not the predicted {space.params(probe)}"
    if problem is not None:
        raise UnsupportedModelError(
            f"{refuse}{problem}; widthsearch cannot change this model's widths exactly"
        )


def _compare(
    space: SpaceView, probe: Sequence[int], groups: Sequence[Group], layers: Sequence[Layer]
) -> str | None:
    """What differs between ``space`` at ``probe`` and the space traced from its realization."""
    if len(layers) != len(space.layers) or len(groups) != len(space.groups):
        return (
            f"has {len(layers)} layers over {len(groups)} channel groups, not "
            f"{len(space.layers)} over {len(space.groups)}"
        )
    for want, got in zip(space.layers, layers, strict=True):
        same = (want.name, want.kind, want.in_groups, want.out_groups, want.kernel) == (
            got.name,
            got.kind,
            got.in_groups,
            got.out_groups,
            got.kernel,
        ) and (want.kind in ("depthwise", "filter") or want.groups == got.groups)
        if not same:
            return f"changes layer '{want.name}' ({want.kind}) into '{got.name}' ({got.kind})"
        if (got.params, got.macs) != (want.param_cost()(probe), want.mac_cost()(probe)):
            return f"counts other costs at layer '{want.name}' than predicted"
    for g, traced in zip(space.groups, groups, strict=True):
        if (traced.width, traced.fixed) != (probe[g.id], g.fixed):
            return (
                f"gives channel group {g.id} ({g.producer}) {traced.width} channels, not "
                f"{probe[g.id]}"
            )
    return None
