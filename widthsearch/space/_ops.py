"""The torch functions the channel tracer sees, by name: which it skips, which it runs
shape-only, which families it treats alike; and how it finds the tensors among their arguments.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.overrides import resolve_name

MATMUL_NAMES = {
    "torch.matmul",
    "torch.Tensor.matmul",
    "torch.Tensor.__matmul__",
    "torch.Tensor.__rmatmul__",
    "torch.mm",
    "torch.Tensor.mm",
    "torch.bmm",
    "torch.Tensor.bmm",
    "torch.einsum",
    "torch.baddbmm",
    "torch.addmm",
    "torch.addbmm",
    "torch.nn.functional.bilinear",
    "torch.nn.functional.scaled_dot_product_attention",
    "torch.nn.functional.conv3d",
    "torch.nn.functional.conv_transpose1d",
    "torch.nn.functional.conv_transpose2d",
    "torch.nn.functional.conv_transpose3d",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.conv_transpose2d",
    "torch.nn.functional.unfold",
    "torch.nn.functional.fold",
}
# matmuls that may pool over positions with channel-free weights (see
# ``_layer_rules.pooling_matmul``)
POOLING_MATMULS = {
    "torch.matmul",
    "torch.Tensor.matmul",
    "torch.Tensor.__matmul__",
    "torch.bmm",
    "torch.Tensor.bmm",
}
REDUCTIONS = {"mean", "sum", "amax", "amin", "std", "var", "logsumexp", "nansum", "nanmean"}
VIEWS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "view_as",
    "reshape_as",
}
EXPANDS = {"expand", "expand_as", "broadcast_to"}


SKIP = {
    "torch.Tensor.dim",
    "torch.Tensor.ndim.__get__",
    "torch.Tensor.shape.__get__",
    "torch.Tensor.size",
    "torch.Tensor.numel",
    "torch.Tensor.dtype.__get__",
    "torch.Tensor.device.__get__",
    "torch.Tensor.is_contiguous",
    "torch.Tensor.__len__",
}
NAMES: dict[Any, str] = {}  # torch function -> its name (:func:`fname`), filled as seen
# ops whose output has their input's shape: traced without computing them (see trace_channels)
SHAPE_KEEPING = {
    f"torch.nn.functional.{f}"
    for f in (
        "batch_norm",
        "layer_norm",
        "group_norm",
        "relu",
        "relu6",
        "silu",
        "gelu",
        "hardswish",
        "hardsigmoid",
        "hardtanh",
        "sigmoid",
        "tanh",
        "mish",
        "elu",
        "leaky_relu",
        "dropout",
    )
}


def fname(func: Any) -> str:
    """The dotted name of a torch function (``"torch.nn.functional.conv2d"``)."""
    return resolve_name(func) or getattr(func, "__name__", repr(func))


def tensors_in(items: Any) -> list[torch.Tensor]:
    """Tensors among ``items``, looking one level into lists, tuples and dicts."""
    found = []
    for a in items:
        if isinstance(a, torch.Tensor):
            found.append(a)
        elif isinstance(a, (list, tuple)):
            found.extend(x for x in a if isinstance(x, torch.Tensor))
        elif isinstance(a, dict):
            found.extend(x for x in a.values() if isinstance(x, torch.Tensor))
    return found
