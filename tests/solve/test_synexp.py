"""SynExp densities, the SynFlow implementation, and the paper's claim on plain conv chains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import zoo_space
from widthsearch.solve.synexp import (
    _depthwise_unfold,
    densities,
    linearized,
    log_synexp,
    synflow_prune,
    synflow_R,
    synflow_scores,
)


def test_densities_follow_group_multipliers():
    space = zoo_space("efficientnet_b0")
    assert log_synexp(space) == 0
    widths = list(space.base_widths)
    dw = next(lay for lay in space.layers if lay.kind == "depthwise")
    pw = next(lay for lay in space.layers if lay.kind == "conv" and lay.in_groups == dw.out_groups)
    g = dw.out_groups[0]
    widths[g] = space.groups[g].width // 2
    dens = densities(space, widths)
    assert dens[dw.name] == pytest.approx(0.5)  # depthwise: x_g
    assert dens[pw.name] == pytest.approx(0.5)  # dense: x_in * x_out with x_out = 1
    assert log_synexp(space, widths) == pytest.approx(
        sum(math.log(p) for p in dens.values() if p != 1)
    )


def test_concatenated_inputs_count_channels_together():
    space = zoo_space("densenet121")
    lay = next(lay for lay in space.layers if lay.kind == "conv" and len(lay.in_groups) > 2)
    widths = list(space.base_widths)
    a = lay.in_groups[1]
    widths[a] = 2 * widths[a]
    total = sum(space.base_widths[g] for g in lay.in_groups)
    expect = (total + space.base_widths[a]) / total
    assert densities(space, widths)[lay.name] == pytest.approx(expect)


class Chain(nn.Module):
    """A plain conv chain: no skips, no biases, so R is multilinear in each layer's weights."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(6, 4, 3, stride=2, bias=False)
        self.fc = nn.Linear(4, 5, bias=False)

    def forward(self, x):
        x = F.relu(self.c3(F.relu(self.c2(F.relu(self.c1(x))))))
        return self.fc(x.mean((2, 3)))


def test_expected_R_under_random_masks_is_product_of_densities():
    """Cai et al.'s claim: E[R] over weight masks of densities p_l equals Π_l p_l · R."""
    torch.manual_seed(0)
    net = linearized(Chain())
    size = (3, 8, 8)
    dense = synflow_R(net, size).item()
    p = {"c1.weight": 0.7, "c2.weight": 0.4, "c3.weight": 0.6, "fc.weight": 0.5}
    params = dict(net.named_parameters())
    originals = {n: params[n].detach().clone() for n in p}
    samples = []
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(3000):
            for n, dens in p.items():
                mask = torch.rand(originals[n].shape, generator=gen, dtype=torch.float64) < dens
                params[n].copy_(originals[n] * mask)
            samples.append(synflow_R(net, size).item())
    samples = torch.tensor(samples, dtype=torch.float64)
    predicted = math.prod(p.values()) * dense
    stderr = samples.std().item() / math.sqrt(len(samples))
    assert abs(samples.mean().item() - predicted) < 4 * stderr
    assert stderr < 0.05 * predicted  # the test has the power to see a 20% error


def test_synflow_scores_are_abs_weight_times_gradient():
    net = linearized(Chain())
    weights = {n: p for n, p in net.named_parameters()}
    scores = synflow_scores(net, (3, 8, 8), weights)
    w = weights["c2.weight"]
    assert torch.equal(scores["c2.weight"], (w.grad * w).abs())
    assert all(bool((s >= 0).all()) and s.dtype == torch.float64 for s in scores.values())


def test_synflow_prune_reaches_the_density_and_keeps_pruned_weights_pruned():
    net = Chain()
    names = ["c1.weight", "c2.weight", "c3.weight", "fc.weight"]
    total = sum(dict(net.named_parameters())[n].numel() for n in names)
    masks = synflow_prune(net, (3, 8, 8), names, 0.3, rounds=20)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.3 * total)
    assert all(m.any() for m in masks.values())  # SynFlow avoids layer collapse on a chain
    fewer = synflow_prune(net, (3, 8, 8), names, 0.3, rounds=1)
    assert sum(int(m.sum()) for m in fewer.values()) == round(0.3 * total)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (2, 2, 2), (1, 0, 1)])
def test_float64_depthwise_fast_path_matches_conv2d(stride, padding, dilation):
    x = torch.randn(2, 5, 9, 11, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64)
    ref = F.conv2d(x, w, b, stride, padding, dilation, 5)
    out = _depthwise_unfold(x, w, b, stride, padding, dilation, 5)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
    (g_ref,) = torch.autograd.grad(ref.sum(), w)
    (g_out,) = torch.autograd.grad(out.sum(), w)
    assert torch.allclose(g_out, g_ref, rtol=1e-12, atol=1e-12)
