"""Running the channel analysis over a whole model for costs beyond params and MACs.

:mod:`widthsearch.hardware.memory` (what autograd saves) and
:mod:`widthsearch.hardware.latency_model` (the elements every op touches) both need the channel
labels of :mod:`widthsearch.space._trace` on tensors that the width space itself does not keep:
they run a subclass of its tracer over a fresh base model and map the tracer's union-find nodes
to the space's group ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from widthsearch.errors import UnsupportedModelError
from widthsearch.space._trace import ChannelTracer

if TYPE_CHECKING:
    from torch import nn

    from widthsearch.space.width_space import WidthSpace

T = TypeVar("T", bound=ChannelTracer)


def run_traced(
    space: WidthSpace,
    make_tracer: Callable[[nn.Module], T],
    *,
    train: bool,
    batch_size: int = 1,
    dtype: str = "float32",
    context: Callable[[T], Any] = lambda tracer: contextlib.nullcontext(),
    what: str,
) -> tuple[T, Callable[[Any], tuple[int, ...]]]:
    """Run ``space``'s base model once under ``make_tracer(model)``.

    Returns the tracer after the pass and a function from a tuple of its union-find nodes (a
    label's segments) to the group ids of their channels, in order. ``context(tracer)``
    is entered around the forward pass (a saved-tensors hook, say); ``train`` picks the mode
    and, for ``False``, runs without autograd. ``what`` names the purpose in errors.

    Raises:
        UnsupportedModelError: the model fails at this batch size, or its structure in this
            mode differs from the analysed one.
    """
    if space._factory is None:  # pragma: no cover - only for hand-built spaces
        raise UnsupportedModelError("this width space has no model to run")
    torch_dtype = getattr(torch, dtype)
    model = space._factory().to(torch_dtype).train(train)
    example = torch.zeros(batch_size, *space.input_size, dtype=torch_dtype)
    tracer = make_tracer(model)
    pre = torch.nn.modules.module.register_module_forward_pre_hook(tracer.pre_hook)
    post = torch.nn.modules.module.register_module_forward_hook(tracer.post_hook, always_call=True)
    grad = contextlib.nullcontext() if train else torch.no_grad()
    try:
        with grad, context(tracer), tracer:
            out = model(example)
    except UnsupportedModelError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        mode = "a training step" if train else "a forward pass"
        raise UnsupportedModelError(
            f"{space.model} cannot run {mode} at batch {batch_size} in "
            f"{tracer.failed_in or tracer.where()} to {what} ({type(exc).__name__}: {first})"
        ) from exc
    finally:
        pre.remove()
        post.remove()
    return tracer, _group_ids(space, tracer.finish(out), train)


def _group_ids(space: WidthSpace, result: Any, train: bool) -> Callable[[Any], tuple[int, ...]]:
    """Union-find nodes -> the group ids of their segments (a node a split refined has
    several), read off the layers and split-size attributes this pass met, by name and
    position. The space was traced in both modes and this pass runs one of them, so it meets
    the eval layers (``train=False``) or every layer (``train=True``); any other structure,
    a node that would map to two groups or a width that differs, is refused."""
    uf = result.uf
    ids: dict[int, int] = {}

    def bind(segs: Any, groups: tuple[int, ...]) -> bool:
        leaves = uf.expand(segs)
        if len(leaves) != len(groups):
            return False
        for leaf, g in zip(leaves, groups, strict=True):
            root = uf.find(leaf)
            if ids.setdefault(root, g) != g or uf.width[root] != space.groups[g].width:
                return False
        return True

    layers = {lay.name: lay for lay in space.layers}
    attrs = {a.name: a for a in space.size_attrs}
    want = {lay.name for lay in space.layers if train or not lay.train_only}
    same = {raw.name for raw in result.layers} == want and all(
        raw.name in layers
        and raw.kind == layers[raw.name].kind
        and bind(raw.in_segs, layers[raw.name].in_groups)
        and bind(raw.out_segs, layers[raw.name].out_groups)
        for raw in result.layers
    )
    for raw_attr in result.attrs if same else ():
        name = f"{raw_attr.module}.{raw_attr.attr}" if raw_attr.module else raw_attr.attr
        attr = attrs.get(name)
        same = (
            attr is not None
            and len(attr.parts) == len(raw_attr.parts)
            and all(bind(p, q) for p, q in zip(raw_attr.parts, attr.parts, strict=True))
        )
        if not same:
            break
    if not same:
        mode = "train" if train else "eval"
        raise UnsupportedModelError(
            f"{space.model} runs differently in {mode} mode than when it was analysed; its "
            "costs beyond params and MACs cannot be modelled"
        )

    def groups_of(segs: Any) -> tuple[int, ...]:
        return tuple(ids[uf.find(leaf)] for leaf in uf.expand(segs))

    return groups_of


__all__ = ["run_traced"]
