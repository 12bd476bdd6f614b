"""Channel analysis: one forward pass that finds which channels must keep one width.

Why a ``TorchFunctionMode``: it sees every torch function a model calls (``F.conv2d``,
``torch.cat``, ``Tensor.permute``, ``x * gate``) at the level the model's author wrote it, with
the real tensors and the real parameters, and it needs no symbolic tracing. timm models with
data-dependent padding (``Conv2dSame``) or Python control flow run unchanged, and the pass costs
about one forward plus a dictionary look-up per op, far less than an autograd-graph walk.

Every tensor that carries channels gets a *label*: the dim that holds the channels and the list
of channel *segments* along it (one segment per coupled node; ``torch.cat`` along channels gives
several). Ops that combine channel tensors elementwise union their nodes; convolutions and
linear layers start new nodes. What comes out is a list of raw layer records over union-find
nodes, which :mod:`widthsearch.space.structure` turns into groups and layers.

The parts: :mod:`~widthsearch.space._nodes` (the union-find of channel segments),
:mod:`~widthsearch.space._records` (labels and raw records), :mod:`~widthsearch.space._ops`
(op names), :mod:`~widthsearch.space._shapes` (shape-only outputs),
:mod:`~widthsearch.space._tracer_base` (the tracer's state and generic rules),
:mod:`~widthsearch.space._layer_rules` and :mod:`~widthsearch.space._channel_rules` (the per-op
rules). This module dispatches every torch function to its rule and runs the pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from widthsearch.errors import UnsupportedModelError
from widthsearch.space import _channel_rules, _layer_rules
from widthsearch.space._ops import (
    MATMUL_NAMES,
    NAMES,
    POOLING_MATMULS,
    REDUCTIONS,
    SHAPE_KEEPING,
    SKIP,
    VIEWS,
    fname,
    tensors_in,
)
from widthsearch.space._records import RawAttr, RawLayer, TraceResult
from widthsearch.space._shapes import conv2d_shape_only, same_shape
from widthsearch.space._tracer_base import TracerBase

_HANDLERS: dict[str, Callable[..., None]] = {**_layer_rules.HANDLERS, **_channel_rules.HANDLERS}
"""Rules by op name (a reduction or a view is found by its short name, a matmul apart)."""


class ChannelTracer(TracerBase):
    """Labels channel tensors while the model runs; see the module docstring.

    ``compute=True`` runs convolutions, norms and activations for real instead of shape-only,
    so that autograd can record the pass (:mod:`widthsearch.hardware.memory` counts what it saves).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = NAMES.get(func)
        if name is None:
            name = NAMES[func] = fname(func)
        if name in SKIP:
            return func(*args, **kwargs)
        try:
            if self.compute:
                out = func(*args, **kwargs)
            elif name == "torch.conv2d" or name == "torch.nn.functional.conv2d":
                out = conv2d_shape_only(*args, **kwargs)
            elif name in SHAPE_KEEPING:
                out = same_shape(*args, **kwargs)
            else:
                out = func(*args, **kwargs)
        except Exception:
            self.failed_in = self.failed_in or self.where()
            raise
        if name in MATMUL_NAMES:
            if name not in POOLING_MATMULS:
                raise self.fail(f"'{name}' is not modelled (only 2-D convs and linear layers)")
            if not _layer_rules.pooling_matmul(self, out, *args, **kwargs):
                raise self.fail(
                    f"'{name}' mixes channels or applies a weight (attention); only a matmul "
                    "that pools each channel over positions is modelled"
                )
            return out
        short = name.rpartition(".")[2]
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, out, *args, **kwargs)
        elif short in REDUCTIONS and name.startswith("torch"):
            _channel_rules.reduction(self, out, *args, **kwargs)
        elif short in VIEWS and name.startswith("torch"):
            self._view(out, args[0], name)
        else:
            self._generic(name, out, args, kwargs)
        return out


def trace_channels(
    model: nn.Module, example_input: torch.Tensor, *, hint: str = "; try another input size"
) -> TraceResult:
    """Run ``model`` on ``example_input`` in eval mode, then in training mode, and return its
    channel structure.

    The eval pass finds the layers and their costs (MACs are those of this pass). The training
    pass (the input repeated to a batch of two, as batch norm needs) finds what runs only in
    training, such as auxiliary heads, whose layers are recorded as train-only, and unites
    the channels that training couples; a layer it meets again keeps its record (see
    :meth:`TracerBase.begin_train_pass`). The model's buffers, its mode and the random state
    are left as they were.

    Convolutions, norms and activations are not computed: their outputs are uninitialized
    tensors of the right shape, which saves most of a forward pass. Values never decide the
    channel structure of the CNNs we analyse, and every shape stays real. ``hint`` ends the
    message when the model itself fails on the input.

    Raises:
        UnsupportedModelError: the model's forward needs more than the image, it fails on the
            input in either mode, or an op cannot be analysed (the message names the module).
    """
    check_forward_takes_image(model)
    tracer = ChannelTracer(model)
    was_training = model.training
    buffers = [(b, b.clone()) for b in model.buffers()]
    pre = nn.modules.module.register_module_forward_pre_hook(tracer.pre_hook)
    post = nn.modules.module.register_module_forward_hook(tracer.post_hook, always_call=True)
    try:
        outputs = [_run(tracer, model.eval(), example_input, hint)]
        tracer.begin_train_pass(outputs[0])
        batch = example_input if len(example_input) > 1 else torch.cat([example_input] * 2)
        devices = [example_input.device.index or 0] if example_input.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            outputs.append(_run(tracer, model.train(), batch, hint))
    finally:
        pre.remove()
        post.remove()
        model.train(was_training)
        with torch.no_grad():
            for b, before in buffers:
                b.copy_(before)
    result = tracer.finish(outputs[1])
    result.outputs = {"eval": skeleton(outputs[0]), "train": skeleton(outputs[1])}
    return result


def skeleton(out: Any) -> Any:
    """``out`` with every tensor replaced by an empty one of its shape and dtype on the meta
    device (no memory), dicts, named tuples, tuples and lists kept; other values kept when
    plain (numbers, strings, None), else None."""
    if isinstance(out, torch.Tensor):
        return torch.empty(out.shape, dtype=out.dtype, device="meta")
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return type(out)(*(skeleton(v) for v in out))
    if isinstance(out, (tuple, list)):
        return type(out)(skeleton(v) for v in out)
    if isinstance(out, dict):
        return {k: skeleton(v) for k, v in out.items()}
    return out if isinstance(out, (int, float, str, bool, type(None))) else None


def _run(tracer: ChannelTracer, model: nn.Module, batch: torch.Tensor, hint: str) -> Any:
    """One forward pass of ``model`` on ``batch`` under ``tracer``."""
    try:
        with torch.no_grad(), tracer:
            return model(batch)
    except UnsupportedModelError:
        raise
    except Exception as exc:  # the model itself failed on the example input
        mode = f" in training mode (batch {batch.shape[0]})" if tracer.train_pass else ""
        raise UnsupportedModelError(
            f"the model failed on an input of shape {tuple(batch.shape[1:])}{mode} in "
            f"{tracer.failed_in or tracer.where()} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}){hint}"
        ) from exc


def check_forward_takes_image(model: nn.Module) -> None:
    """Refuse a model whose ``forward`` needs more than the image: widthsearch calls
    ``model(images)`` alone, to analyse it, to train it and to time it.

    Raises:
        UnsupportedModelError: ``forward`` has a second required argument; the message names it.
    """
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # a builtin or C forward: nothing to read
        return
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if len(required) > 1:
        extra = ", ".join(f"'{n}'" for n in required[1:])
        raise UnsupportedModelError(
            f"{type(model).__name__}.forward needs more than the image (it also requires "
            f"{extra}); widthsearch calls model(images) alone: give {extra} a default, or wrap "
            "the model in a module whose forward(x) supplies it"
        )


__all__ = [
    "NAMES",
    "ChannelTracer",
    "RawAttr",
    "RawLayer",
    "TraceResult",
    "check_forward_takes_image",
    "skeleton",
    "fname",
    "tensors_in",
    "trace_channels",
]
