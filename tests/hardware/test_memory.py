"""Activation memory: the posynomial equals what autograd saves, to the byte, on the zoo."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import (
    MECHANISM_SIZE,
    MECHANISMS,
    SMALL,
    ZOO,
    mechanism_space,
    random_widths,
    zoo_space,
)
from widthsearch.hardware.memory import activation_memory
from widthsearch.hardware.memory_trace import saved_bytes


def _saved(space, widths, batch_size=1):
    model = space.realize(widths)
    return saved_bytes(model, torch.randn(batch_size, *SMALL))


@pytest.mark.parametrize("name", ZOO)
def test_activation_memory_exact_on_zoo(name):
    space = zoo_space(name)
    memory = activation_memory(space)
    assert memory.cost.terms  # not empty
    for widths in (space.base_widths, random_widths(space, 0), random_widths(space, 1)):
        saved, storages = _saved(space, widths)
        assert memory(widths) == saved
    assert memory.storages == _saved(space, space.base_widths)[1]


@pytest.mark.parametrize("name", MECHANISMS)
def test_activation_memory_exact_on_channel_mechanisms(name):
    """Splits (views of one storage), tied chunks, standardized weights (storages computed
    from a parameter), fixed filters, ECA: still equal to what autograd saves, to the byte.
    Batch 2: some models normalize a pooled 1x1 map in train mode."""
    space = mechanism_space(name)
    memory = activation_memory(space, batch_size=2)
    for widths in (space.base_widths, *(random_widths(space, s, high=1.5) for s in (0, 1))):
        model = space.realize(widths)
        assert memory(widths) == saved_bytes(model, torch.randn(2, *MECHANISM_SIZE))[0]


def test_activation_memory_grows_with_widths_and_batch():
    space = zoo_space("mobilenetv2_100")
    memory = activation_memory(space, batch_size=2)
    wide = [w if g.fixed else 2 * w for w, g in zip(space.base_widths, space.groups, strict=True)]
    assert memory(wide) == _saved(space, wide, batch_size=2)[0]
    # per-channel statistics do not grow with the batch, so two images are not twice one
    one = activation_memory(space)
    assert one(space.base_widths) < memory(space.base_widths) < 2 * one(space.base_widths)
    assert memory(wide) > memory(space.base_widths)


def test_saved_bytes_counts_an_inplace_storage_once():
    conv = torch.nn.Conv2d(3, 8, 3)
    relu_inplace = torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True), torch.nn.Conv2d(8, 4, 1))
    relu_copy = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    x = torch.randn(1, 3, 10, 10)
    fmap = 8 * 8 * 8 * 4  # one 8x8x8 float32 map
    image = 3 * 10 * 10 * 4
    # in place: the ReLU's output is the conv's output, saved by ReLU and the next conv once
    assert saved_bytes(relu_inplace, x) == (image + fmap, 2)
    assert saved_bytes(relu_copy, x) == (image + fmap, 2)


def test_counting_frees_the_activations_it_saw():
    """The pack hooks must not tie the saved tensors into reference cycles through the
    autograd graph (which Python's collector cannot see): every count would leak a pass."""
    import gc
    import weakref

    from widthsearch import WidthSpace

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    outputs = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: outputs.append(weakref.ref(o)) if isinstance(m, torch.nn.ReLU) else None
    )
    try:
        saved_bytes(model, torch.randn(2, 3, 10, 10))
        activation_memory(WidthSpace.from_module(model, torch.zeros(1, 3, 10, 10)), batch_size=2)
    finally:
        hook.remove()
    gc.collect()
    assert len(outputs) >= 2 and all(ref() is None for ref in outputs)
