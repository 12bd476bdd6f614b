"""Activation memory of a training step, exactly, as a posynomial of the group widths.

What a training step keeps for backward is what autograd saves: every tensor that
``torch.autograd.graph.saved_tensors_hooks`` hands its pack hook during the forward pass. The
memory those tensors hold is the bytes of their *storages*, each counted once (an in-place
ReLU and the conv that reads its output save one storage; a view keeps its whole base alive),
without the model's parameters and buffers, which are no activations.

Every such storage holds ``positions x channels`` elements, its channels a sum of group widths
(a feature map), or a width-independent number of them (the image, a channel-reduced map). So
the total is linear in the widths, a posynomial with integer coefficients:

    bytes(w) = Σ_s  element_size_s · positions_s · Σ_{g ∈ channels(s)} w_g   (+ constants)

:func:`activation_memory` finds it by running the model once *for real*, in train mode with
autograd on, under the channel analysis of :mod:`widthsearch.space._trace` (which labels every
channel tensor with its groups) and a pack hook that collects the saved tensors. A storage a
labelled tensor covers takes that tensor's channels; one made inside an op (BatchNorm's saved
mean and inverse std, max-pool indices, dropout masks) takes the channels of the op's input or
output whose shape it has (a per-channel vector: one position). The result is checked in the
tests against the storages autograd saves on the realized model at base and random widths,
on the zoo: the two are equal to the byte.

Batch size enters exactly too: the pass runs at the batch asked for (per-channel statistics
do not grow with the batch, so bytes are not simply proportional to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from widthsearch.space.cost import Posynomial

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace


@dataclass(frozen=True)
class ActivationMemory:
    """Bytes of activations a training step saves for backward, as a posynomial of widths."""

    cost: Posynomial
    """Bytes as a posynomial of group widths (integer coefficients: exact)."""
    batch_size: int
    dtype: str
    storages: int
    """Number of distinct storages autograd saves at the base widths."""

    def __call__(self, widths: Sequence[int]) -> int:
        return int(self.cost(widths))


def activation_memory(
    space: WidthSpace, *, batch_size: int = 1, dtype: str = "float32"
) -> ActivationMemory:
    """The activation memory of a training step of ``space``'s model as a posynomial.

    Runs the base model once in train mode at ``batch_size`` (see the module docstring); the
    result is cached on the space per batch size and dtype.

    Raises:
        UnsupportedModelError: the model cannot run a training step at this batch size, or its
            structure in train mode differs from the analysed one.
    """
    # the space's instance dict caches derived models; it takes any key, not only names
    cache = cast(dict[Any, Any], space.__dict__)
    key = ("_activation_memory", batch_size, dtype)
    cached = cache.get(key)
    if cached is None:
        from widthsearch.hardware.memory_trace import trace_memory

        cost, storages = trace_memory(space, batch_size, dtype)
        cached = cache[key] = ActivationMemory(cost, batch_size, dtype, storages)
    return cached


__all__ = ["ActivationMemory", "activation_memory"]
