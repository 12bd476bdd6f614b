"""WidthSpace on hand-built modules whose grouping is known, widths validation, and init."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from widthsearch import InvalidWidthsError, UnknownModelError, UnsupportedModelError, WidthSpace
from widthsearch._realize import RealizationError

from .conftest import SMALL, count, zoo_space


class Toy(nn.Module):
    """stem -> (residual 1x1 pair) -> depthwise -> SE gate -> concat with a branch -> head."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.res1 = nn.Conv2d(c, 2 * c, 1)
        self.res2 = nn.Conv2d(2 * c, c, 1, bias=False)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.se_reduce = nn.Conv2d(c, 4, 1)
        self.se_expand = nn.Conv2d(4, c, 1)
        self.branch = nn.Conv2d(c, 6, 1)
        self.norm = nn.GroupNorm(1, c + 6)
        self.scale = nn.Parameter(torch.full((c + 6,), 0.5))
        self.fc = nn.Linear(c + 6, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = x + self.res2(F.relu(self.res1(x)))
        x = self.dw(x)
        x = x * self.se_expand(F.relu(self.se_reduce(x.mean((2, 3), keepdim=True)))).sigmoid()
        x = torch.cat([x, self.branch(x)], dim=1)
        x = self.norm(x) * self.scale.view(1, -1, 1, 1)
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def toy():
    return WidthSpace.from_module(Toy(), torch.zeros(1, 3, 16, 16), name="toy")


def _group_of(space, layer, side="out"):
    lay = next(lay for lay in space.layers if lay.name == layer)
    return lay.out_groups if side == "out" else lay.in_groups


def test_toy_grouping(toy):
    stem = _group_of(toy, "stem")
    # residual add, depthwise conv and SE gate all keep the stem's channels
    assert _group_of(toy, "res2") == stem
    assert _group_of(toy, "dw") == stem
    assert _group_of(toy, "se_expand") == stem
    assert _group_of(toy, "res1") != stem
    # the concat gives the norm and the head two segments: stem channels, then branch channels
    assert _group_of(toy, "norm", "in") == stem + _group_of(toy, "branch")
    assert _group_of(toy, "fc", "in") == stem + _group_of(toy, "branch")
    assert [lay.kind for lay in toy.layers if lay.name == "scale"] == ["scale"]
    fixed = {g.producer for g in toy.groups if g.fixed}
    assert fixed == {"input", "fc"}
    assert toy.params() == sum(p.numel() for p in Toy().parameters())


def test_toy_realize_at_new_widths(toy):
    widths = {g.id: g.width * 3 for g in toy.groups if not g.fixed}
    model = toy.realize(widths)
    assert count(model, (3, 16, 16)) == (toy.params(widths), toy.macs(widths))
    assert torch.all(model.scale == 0.5)  # a constant-initialized parameter keeps its value
    assert model.scale.numel() == 3 * 8 + 3 * 6


def test_widths_validation(toy):
    base = list(toy.base_widths)
    with pytest.raises(InvalidWidthsError, match="groups"):
        toy.widths(base[:-1])
    bad = list(base)
    bad[-1] += 1
    with pytest.raises(InvalidWidthsError, match="fixed"):
        toy.widths(bad)
    free = next(g.id for g in toy.groups if not g.fixed)
    for value in (0, -8, 2.5):
        with pytest.raises(InvalidWidthsError, match="positive integer"):
            toy.widths({free: value})
    with pytest.raises(InvalidWidthsError, match="no group"):
        toy.widths({len(base): 8})


def test_grouped_conv_widths_are_multiples_of_groups():
    space = zoo_space("resnext50_32x4d")
    grouped = [lay for lay in space.layers if lay.kind == "grouped"]
    assert grouped and all(lay.groups == 32 for lay in grouped)
    g = space.groups[grouped[0].in_groups[0]]
    assert g.multiple_of == 32
    with pytest.raises(InvalidWidthsError, match="multiple of 32"):
        space.widths({g.id: g.width + 8})
    widths = {g.id: g.width + 32, grouped[0].out_groups[0]: 64}
    assert count(space.realize(widths), SMALL) == (space.params(widths), space.macs(widths))


def test_realize_reruns_family_init():
    """Resized layers get the family's init: fan-out normal convs, zero-init last BN gammas."""
    space = zoo_space("resnet50")
    widths = {g.id: 2 * g.width for g in space.groups if not g.fixed}
    model = space.realize(widths)
    conv = model.layer1[0].conv2
    fan_out = conv.out_channels * math.prod(conv.kernel_size)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert torch.all(model.layer1[0].bn3.weight == 0)  # timm's zero_init_last survives
    assert model.num_features == 2 * 2048

    eff = zoo_space("efficientnet_b0").realize(
        {g.id: 2 * g.width for g in zoo_space("efficientnet_b0").groups if not g.fixed}
    )
    pw = eff.blocks[1][0].conv_pw
    assert pw.weight.std().item() == pytest.approx(math.sqrt(2 / pw.out_channels), rel=0.05)


def test_realize_at_base_keeps_model_and_counts():
    space = zoo_space("mobilenetv2_100")
    assert count(space.realize(), SMALL) == (space.params(), space.macs())


def test_from_module_matches_from_timm():
    model = timm.create_model("mobilenetv3_large_100")
    space = WidthSpace.from_module(model, torch.zeros(1, *SMALL))
    ref = zoo_space("mobilenetv3_large_100")
    assert space.groups == ref.groups
    assert space.layers == ref.layers
    assert model.training  # analysis ran in eval mode and restored the mode


def test_unknown_model_names_close_matches():
    with pytest.raises(UnknownModelError, match="close matches: efficientnet_b0, "):
        WidthSpace.from_timm("EfficientNet-B0")


def test_transformer_is_reported_unsupported():
    with pytest.raises(UnsupportedModelError, match="blocks.0.attn"):
        WidthSpace.from_timm("vit_tiny_patch16_224", input_size=(3, 32, 32), img_size=32)


class ChannelShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def test_channel_shuffle_is_reported_unsupported():
    with pytest.raises(UnsupportedModelError, match="mixes the channel dim"):
        WidthSpace.from_module(ChannelShuffle(), torch.zeros(1, 3, 8, 8))


class StoredShape(nn.Module):
    """A per-channel scale that keeps its shape and width in attributes (timm's Scale)."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.scale = nn.Parameter(torch.full((c,), 0.5))
        self.shape = (c, 1, 1)
        self.dim = c
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.conv(x) * self.scale.view(self.shape)
        return self.fc(x.mean((2, 3)).reshape(-1, self.dim))


def test_stored_shape_of_a_scale_follows_its_width():
    space = WidthSpace.from_module(StoredShape(), torch.zeros(1, 3, 8, 8))
    conv = next(lay for lay in space.layers if lay.name == "conv").out_groups[0]
    model = space.realize({conv: 24})
    assert (model.shape, model.dim) == ((24, 1, 1), 24)
    assert count(model, (3, 8, 8)) == (space.params({conv: 24}), space.macs({conv: 24}))
    model(torch.randn(2, 3, 8, 8)).sum().backward()


def test_parse_time_check_leaves_the_module_as_it_was():
    model = StoredShape()
    params = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    WidthSpace.from_module(model, torch.zeros(1, 3, 8, 8))
    assert (model.shape, model.dim, model.conv.out_channels) == ((8, 1, 1), 8, 8)
    for n, p in model.named_parameters():
        assert p is params[n][0] and torch.equal(p, params[n][1])
    assert dict(model.named_buffers()) == buffers
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 10)


class StoredWidth(nn.Module):
    """Reads its channel count from an attribute no resize can know about."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 1)
        self.c = c
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x.reshape(x.shape[0], self.c, -1).mean(-1))


def test_model_that_breaks_at_other_widths_is_refused_at_parse_time():
    with pytest.raises(UnsupportedModelError, match="realized at other widths") as info:
        WidthSpace.from_module(StoredWidth(), torch.zeros(1, 3, 8, 8))
    assert "\n" not in str(info.value)


def test_realized_parameter_count_is_checked():
    model = StoredShape()
    space = WidthSpace.from_module(model, torch.zeros(1, 3, 8, 8))
    model.extra = nn.Parameter(torch.zeros(5))  # the space no longer describes the model
    with pytest.raises(RealizationError, match="widthsearch bug"):
        space.realize()


def test_model_failing_on_input_size_is_reported():
    with pytest.raises(UnsupportedModelError, match="failed on an input of shape"):
        WidthSpace.from_timm("convnext_atto", input_size=(3, 2, 2))
