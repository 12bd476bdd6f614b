"""Peak activation memory of an inference pass, exactly, as a peak of posynomials of the widths.

The budget that binds on a microcontroller is not the weights but the activations alive at once
(MCUNet's peak SRAM). widthsearch counts it under this definition, for an eval forward pass at
batch 1:

- an **op** is a call of a torch function from the model's forward that returns a tensor (as
  :class:`torch.overrides.TorchFunctionMode` sees them: ``F.conv2d``, ``torch.relu``,
  ``Tensor.add``, a view; not the calls inside them, and not size queries);
- a **storage** (the memory behind a tensor; a view or an in-place op shares its input's) is
  alive from the op that first returns it until the last op that takes it (or a view of it) as
  an input; the image is alive from the first op, the model's outputs until the last. The
  model's parameters and buffers are not activations and never count;
- at each op, the memory in use is the sum of the storages alive then (its inputs, its output,
  and every tensor kept for a later op, such as a residual branch), ``activation_bytes`` per
  element whatever the tensor's dtype (4: float32, 2: float16, 1: int8 deployment);
- the **peak** is the largest such sum over the ops.

Every storage holds ``positions x channels`` elements, its channels a sum of group widths, or a
number no width changes (the image); which storages are alive at an op does not depend on the
widths. So each op's memory is linear in the widths, a posynomial with integer coefficients, and
the peak is the largest of them: a :class:`~widthsearch.space.cost.MaxPosynomial`, which a budget
holds part by part (a part another part dominates at every width is left out).

:func:`peak_memory` finds it by running the base model once *for real* under the channel
analysis of :mod:`widthsearch.space._trace`, recording each storage's birth, last use and
channels; :func:`peak_bytes` is the reference count on any realized model, with the same op
rule and no analysis. The model is refused when the two disagree at other widths (a storage
whose size the channel labels do not explain), so a prediction it gives equals the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from widthsearch.space.cost import MaxPosynomial

if TYPE_CHECKING:
    import torch
    from torch import nn

    from widthsearch.space.width_space import WidthSpace

ACTIVATION_BYTES = (1, 2, 4)
"""Bytes per activation element the peak may be counted in."""


@dataclass(frozen=True)
class PeakMemory:
    """Peak bytes of activations alive at once in an eval forward pass at batch 1."""

    cost: MaxPosynomial
    """Bytes at each op that can be the peak, as posynomials of the group widths (exact)."""
    activation_bytes: int
    ops: int
    """Ops of the pass (each a moment the memory is counted at)."""
    batch_size: int = 1

    def __call__(self, widths: Sequence[int]) -> int:
        return int(self.cost(widths))


def peak_memory(space: WidthSpace, *, activation_bytes: int = 4) -> PeakMemory:
    """The peak inference activation memory of ``space``'s model as a peak of posynomials
    (see the module docstring); cached on the space per ``activation_bytes``.

    Raises:
        UnsupportedModelError: the model cannot run a forward pass at batch 1, or a storage
            size the analysis does not explain (the count at other widths would differ).
        ValueError: ``activation_bytes`` not 1, 2 or 4.
    """
    if activation_bytes not in ACTIVATION_BYTES:
        raise ValueError(f"activation_bytes must be 1, 2 or 4, not {activation_bytes!r}")
    cache = cast(dict[Any, Any], space.__dict__)
    key = ("_peak_memory", activation_bytes)
    cached = cache.get(key)
    if cached is None:
        from widthsearch.hardware._peak_trace import trace_peak

        parts, ops = trace_peak(space, activation_bytes)
        cached = cache[key] = PeakMemory(MaxPosynomial(parts), activation_bytes, ops)
    return cached


def peak_bytes(model: nn.Module, example_input: torch.Tensor, activation_bytes: int = 4) -> int:
    """Peak bytes of activations alive at once in one eval forward of ``model`` (the reference
    count of the module docstring's definition, on any realized model)."""
    from widthsearch.hardware._peak_trace import count_peak

    return count_peak(model, example_input, activation_bytes)


__all__ = ["ACTIVATION_BYTES", "PeakMemory", "peak_bytes", "peak_memory"]
