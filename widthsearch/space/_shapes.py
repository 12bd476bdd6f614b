"""Shape-only stand-ins for the ops whose values never decide the channel structure.

Convolutions, norms and activations give uninitialized tensors of the right shape instead of
computing (see :func:`widthsearch.space._trace.trace_channels`); broadcasting is worked out on
shapes alone.
"""

from __future__ import annotations

from typing import Any

import torch


def broadcast(tensors: list[torch.Tensor]) -> tuple[int, ...]:
    """The broadcast shape of ``tensors`` (``ValueError`` if they do not broadcast)."""
    ndim = max(t.ndim for t in tensors)
    shape = [1] * ndim
    for t in tensors:
        for i, size in enumerate(t.shape, ndim - t.ndim):
            if size != 1:
                if shape[i] not in (1, size):
                    raise ValueError("shapes do not broadcast")
                shape[i] = size
    return tuple(shape)


def same_shape(input, *args, inplace=False, **kwargs):
    """Output of a norm or activation, which keeps its input's shape, without the arithmetic."""
    return input if inplace else input.new_empty(input.shape)


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d_shape_only(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """An uninitialized tensor shaped like ``F.conv2d``'s output (see :func:`trace_channels`)."""
    if input.ndim != 4 or input.shape[1] != weight.shape[1] * groups:  # let torch raise its error
        return torch.conv2d(input, weight, bias, stride, padding, dilation, groups)
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    kh, kw = weight.shape[2:]
    if padding == "same":
        h, w = input.shape[2:]
    else:
        ph, pw = (0, 0) if padding == "valid" else _pair(padding)
        h = (input.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w = (input.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if h < 1 or w < 1:  # input smaller than the kernel: torch says so
        return torch.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return input.new_empty((input.shape[0], weight.shape[0], h, w))
