"""Which output of a model training reads: one rule for outputs of any shape.

A classifier returns a tensor ``[batch, classes]``. Many models return more: torchvision's
GoogLeNet and Inception return a named tuple in training (``logits`` and the auxiliary heads'
logits), its segmentation models a dict (``out`` and ``aux``), a model with an embedding a tuple
``(logits, embedding)``. Training (the loss, validation, the head policy's start loss) reads one
tensor of it, by this rule:

1. ``output`` set (``verify --output KEY``, ``[verify] output`` in a study file): a dict's entry
   ``KEY``, a named tuple's field ``KEY``, or a tuple's or list's item at index ``KEY``;
2. else a tensor is itself; a dict gives its ``logits`` entry, else its ``out`` entry, else its
   first tensor; a named tuple its ``logits`` field, else its first tensor; a tuple or list its
   first tensor.

The tensor the rule picks must be ``[batch, classes]`` in training and in eval mode; the other
outputs (auxiliary logits, embeddings) are left out of the loss. :func:`check_outputs` holds a
model's outputs, as the width space's analysis saw them, to that before anything trains, so
that a model training cannot use is refused in one line, not after minutes of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthsearch.errors import ModelOutputError

LOGIT_KEYS = ("logits", "out")
"""The dict entries the rule reads, in order, when ``output`` is not set (``logits``: the
common name; ``out``: torchvision's segmentation and detection-style dicts)."""


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _named_tuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _plain(text: str) -> str:
    """``text`` for a message with ``{option}`` placeholders: its own braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def _kind(out: Any) -> str:
    if _is_tensor(out):
        return "a tensor"
    if isinstance(out, Mapping):
        return f"a dict with keys {', '.join(repr(k) for k in out) or '(none)'}"
    if _named_tuple(out):
        return f"a named tuple {type(out).__name__} with fields {', '.join(out._fields)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)} items"
    return f"a {type(out).__name__}"


def select(out: Any, output: str | None = None) -> tuple[Any, str]:
    """The part of a model's output ``out`` that training reads, by the rule of the module
    docstring, and where it is (``""`` for the output itself, ``"['out']"``, ``".logits"``,
    ``"[0]"``).

    Raises:
        ModelOutputError: ``output`` names no entry of ``out``, or ``out`` holds no tensor.
    """
    if output is not None:
        if isinstance(out, Mapping):
            if output in out:
                return out[output], f"[{output!r}]"
        elif _named_tuple(out) and output in out._fields:
            return getattr(out, output), f".{output}"
        elif isinstance(out, (tuple, list)) and _index(output, len(out)) is not None:
            return out[int(output)], f"[{output}]"
        if _is_tensor(out):
            fix = "leave {output_key} out"
        elif isinstance(out, (tuple, list)) and not _named_tuple(out):
            fix = f"give {{output_key}} an index from 0 to {len(out) - 1}"
        else:
            fix = "give {output_key} one of them"
        raise ModelOutputError(
            options=f"the model returns {_plain(_kind(out))}, which has no entry "
            f"'{_plain(output)}': {fix}"
        )
    if _is_tensor(out):
        return out, ""
    if isinstance(out, Mapping):
        for key in LOGIT_KEYS:
            if _is_tensor(out.get(key)):
                return out[key], f"[{key!r}]"
        items = [(f"[{k!r}]", v) for k, v in out.items()]
    elif _named_tuple(out):
        if "logits" in out._fields and _is_tensor(out.logits):
            return out.logits, ".logits"
        items = [(f".{f}", getattr(out, f)) for f in out._fields]
    elif isinstance(out, (tuple, list)):
        items = [(f"[{i}]", v) for i, v in enumerate(out)]
    else:
        items = []
    for where, value in items:
        if _is_tensor(value):
            return value, where
    raise ModelOutputError(
        f"the model returns {_kind(out)}, which holds no tensor to train on; make it return "
        "its logits, [batch, classes]"
    )


def _index(text: str, length: int) -> int | None:
    """``text`` as an index into ``length`` items, or None."""
    if text.lstrip("-").isdigit() and -length <= int(text) < length:
        return int(text)
    return None


def logits(out: Any, output: str | None = None) -> Any:
    """The tensor training reads from ``out`` (:func:`select`), at the cost of one type check
    for a model that returns a tensor."""
    if output is None and _is_tensor(out):
        return out
    return select(out, output)[0]


def check_outputs(outputs: Mapping[str, Any], classes: int, output: str | None = None) -> str:
    """Hold the outputs of a model in each mode (``{"eval": ..., "train": ...}``, as
    :attr:`widthsearch.space.width_space.WidthSpace.outputs` keeps them: tensors on the meta
    device) to the rule: the tensor it picks must be ``[batch, classes]``. Returns what
    training reads, for a note (``"the model's output['logits'] ([batch, 10])"``).

    Raises:
        ModelOutputError: in one line, naming what the rule picked, its shape and the mode.
    """
    said = []
    for key, out in outputs.items():
        mode = "training" if key == "train" else key
        tensor, where = select(out, output)
        shape = tuple(tensor.shape) if _is_tensor(tensor) else None
        batch = shape[0] if shape else None
        if shape is None or len(shape) != 2 or shape[1] != classes:
            got = f"of shape {list(shape)}" if shape is not None else f"a {type(tensor).__name__}"
            fix = (
                "name a [batch, classes] entry with {output_key}"
                if not _is_tensor(out) or output is not None
                else "make it return [batch, classes] logits"
            )
            raise ModelOutputError(
                options=f"training reads the model's output{_plain(where)} ({_rule(out, output)}), "
                f"{got} in {mode} mode, but needs [batch, classes] = [{batch}, {classes}]; "
                f"{fix} (the rule: docs/guides/own-model.md, 'What training reads')"
            )
        said.append((mode, f"output{where}" if where else "output itself"))
    wheres = {w for _, w in said}
    if len(wheres) == 1:
        return f"the model's {wheres.pop()} ([batch, {classes}])"
    per_mode = ", ".join(f"its {w} in {m} mode" for m, w in said)
    return f"{per_mode} ([batch, {classes}])"


def _rule(out: Any, output: str | None) -> str:
    """Why the rule picked what it picked, in a few words."""
    if output is not None:
        return "as asked"
    if _is_tensor(out):
        return "a tensor"
    if isinstance(out, Mapping):
        return "the dict's logits or out entry, else its first tensor"
    if _named_tuple(out):
        return "the named tuple's logits field, else its first tensor"
    return "the first tensor"


def describe(outputs: Mapping[str, Any], output: str | None = None) -> str:
    """What training reads of outputs like :func:`check_outputs` takes, without holding them
    to a number of classes (``"output.logits [2, 1000] in training mode, the output itself
    [1, 1000] in eval mode"``), or why it cannot."""
    parts, flat = [], True
    for key, out in outputs.items():
        try:
            tensor, where = select(out, output)
        except ModelOutputError as exc:
            return str(exc)
        shape = list(tensor.shape) if _is_tensor(tensor) else f"a {type(tensor).__name__}"
        flat = flat and _is_tensor(tensor) and tensor.ndim == 2
        mode = "training" if key == "train" else key
        parts.append(f"{'output' + where if where else 'the output itself'} {shape} in {mode} mode")
    refused = "" if flat else " (not [batch, classes]: verify refuses it)"
    return ", ".join(parts) + refused


__all__ = ["LOGIT_KEYS", "check_outputs", "describe", "logits", "select"]
