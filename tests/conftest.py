"""Shared fixtures: the model zoo of the width-space issue, analysed once per session."""

from __future__ import annotations

import functools
import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from widthsearch import WidthSpace

ZOO = [
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "mobilenetv2_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "efficientnet_b3",
    "tf_efficientnet_b0",
    "convnext_atto",
    "regnetx_002",
    "densenet121",
]
# Small inputs keep CI fast; the cost model is exact at any input size the model accepts.
SMALL = (3, 64, 64)


@functools.cache
def zoo_space(name: str) -> WidthSpace:
    return WidthSpace.from_timm(name, input_size=SMALL)


def count(model: torch.nn.Module, input_size) -> tuple[int, int]:
    """(params, MACs) counted on a real model: numel and FlopCounterMode / 2, batch of one."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return sum(p.numel() for p in model.parameters()), flops // 2


def random_widths(space: WidthSpace, seed: int, low: float = 0.25, high: float = 2.0):
    """Seeded random widths for the free groups, below and above base, on each group's grid."""
    rng = random.Random(seed)
    widths = []
    for g in space.groups:
        if g.fixed:
            widths.append(g.width)
            continue
        target = g.width * rng.uniform(low, high)
        widths.append(g.multiple_of * max(1, round(target / g.multiple_of)))
    return widths


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
