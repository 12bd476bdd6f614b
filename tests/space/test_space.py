"""WidthSpace on hand-built modules whose grouping is known, widths validation, and init."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import SMALL, count, zoo_space
from widthsearch import InvalidWidthsError, UnknownModelError, UnsupportedModelError, WidthSpace
from widthsearch.space.realize import RealizationError


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
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(x.mean((2, 3)))


def test_channel_shuffle_ties_its_chunks():
    """``view(n, 2, c // 2, ...)`` splits the channels into two equal chunks: one group of
    half the conv's width, which the shuffle and the merge back keep."""
    space = WidthSpace.from_module(ChannelShuffle(), torch.zeros(1, 3, 8, 8))
    conv = next(lay for lay in space.layers if lay.name == "conv")
    g = conv.out_groups[0]
    assert conv.out_groups == (g, g) and space.groups[g].width == 4
    assert "2 equal chunks" in space.groups[g].note
    model = space.realize({g: 12})
    assert model.conv.out_channels == 24
    assert count(model, (3, 8, 8)) == (space.params({g: 12}), space.macs({g: 12}))


class MixesDims(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        return x.reshape(n, c // 2, 2 * h, w)


def test_reshape_that_mixes_channels_with_space_is_reported_unsupported():
    with pytest.raises(UnsupportedModelError, match="mixes the channel dim"):
        WidthSpace.from_module(MixesDims(), torch.zeros(1, 3, 8, 8))


class Matmuls(nn.Module):
    """``mode``: pool the channels over positions with a one-channel map (GlobalContext), mix
    channels with channels (a Gram matrix: attention-like), or multiply by a parameter."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 8, 1)
        self.attn = nn.Conv2d(8, 1, 1)
        self.weight = nn.Parameter(torch.randn(64, 1))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        if self.mode == "pool":
            attn = self.attn(x).reshape(n, 1, h * w).softmax(-1).unsqueeze(3)
            pooled = x.reshape(n, c, h * w).unsqueeze(1) @ attn
        elif self.mode == "gram":
            pooled = (x.flatten(2) @ x.flatten(2).transpose(1, 2)).mean(2)
        else:
            pooled = x.flatten(2) @ self.weight
        return self.fc(pooled.reshape(n, c))


def test_matmul_pooling_over_positions_is_a_layer_without_parameters():
    space = WidthSpace.from_module(Matmuls("pool"), torch.zeros(1, 3, 8, 8))
    pool = next(lay for lay in space.layers if lay.kind == "pool")
    assert (pool.name, pool.params, pool.macs) == ("matmul", 0, 8 * 64)
    attn = next(lay for lay in space.layers if lay.name == "attn")
    assert space.groups[attn.out_groups[0]].fixed  # one weight per position, for every channel
    g = pool.in_groups[0]
    model = space.realize({g: 24})
    assert count(model, (3, 8, 8)) == (space.params({g: 24}), space.macs({g: 24}))


@pytest.mark.parametrize("mode", ["gram", "param"])
def test_matmul_that_mixes_channels_or_holds_weights_is_refused(mode):
    with pytest.raises(UnsupportedModelError, match="matmul' mixes channels or applies a weight"):
        WidthSpace.from_module(Matmuls(mode), torch.zeros(1, 3, 8, 8))


class Splits(nn.Module):
    """A conv whose output is sliced at an attribute (``self.keep``), split by an attribute
    list (``self.sizes``), chunked, and sliced at a constant; a concatenation is added to one
    conv's output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 1)
        self.keep = 16
        self.sizes = [6, 10]
        self.a = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.b = nn.Conv2d(10, 4, 1)
        self.other = nn.Conv2d(3, 10, 1)
        self.mix = nn.Conv2d(3, 10, 1)
        self.fc = nn.Linear(5 + 8 + 10, 5)

    def forward(self, img):
        x = self.stem(img)
        kept = x[:, : self.keep]  # the last 8 channels are dropped
        a, b = torch.split(kept, self.sizes, dim=1)
        y = torch.cat([self.a(a), self.b(b)], dim=1) + self.mix(img)  # 6 + 4 recombined
        c1, c2 = self.other(img).chunk(2, dim=1)
        z = torch.cat([c1 * c2, x[:, self.keep :], y], dim=1)
        lead, rest = z[:, :5], z[:, 5:]  # a constant offset: the first 5 channels stay 5
        return self.fc(torch.cat([lead, rest], 1).mean((2, 3)))


@pytest.fixture(scope="module")
def splits():
    return WidthSpace.from_module(Splits(), torch.zeros(1, 3, 8, 8))


def test_split_segments_become_groups(splits):
    stem = next(lay for lay in splits.layers if lay.name == "stem")
    widths = [splits.groups[g].width for g in stem.out_groups]
    assert sum(widths) == 24 and len(stem.out_groups) >= 3  # kept: 6 + 10, dropped: 8
    mix = next(lay for lay in splits.layers if lay.name == "mix")
    a = next(lay for lay in splits.layers if lay.name == "a")
    b = next(lay for lay in splits.layers if lay.name == "b")
    assert mix.out_groups == a.out_groups + b.out_groups  # recombined: refined at 6 | 4
    other = next(lay for lay in splits.layers if lay.name == "other")
    assert other.out_groups[0] == other.out_groups[-1]  # two chunks tied: one group
    attrs = {a.attr: a for a in splits.size_attrs}
    assert attrs["keep"].value(splits.base_widths) == 16
    assert attrs["sizes"].value(splits.base_widths) == [6, 10]
    fixed = [g for g in splits.groups if g.fixed and g.producer not in ("input", "fc")]
    assert fixed and all("constant" in g.note for g in fixed)
    assert sum(g.width for g in fixed) == 5


def test_split_models_realize_at_new_widths(splits):
    free = [g for g in splits.groups if not g.fixed]
    widths = {g.id: g.width + 2 * (1 + g.id % 3) for g in free}
    model = splits.realize(widths)
    full = splits.widths(widths)
    assert model.keep == splits.size_attrs[0].value(full) != 16
    assert model.sizes == [sum(full[g] for g in p) for p in splits.size_attrs[1].parts]
    assert count(model, (3, 8, 8)) == (splits.params(widths), splits.macs(widths))
    model(torch.randn(2, 3, 8, 8)).sum().backward()


class ComputedSplit(nn.Module):
    """Splits at ``x.shape[1] // 2``: no attribute holds the size, so the first half is
    fixed, and at other widths the code splits elsewhere: refused, never built broken."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x[:, : x.shape[1] // 2].mean((2, 3)))


def test_split_at_a_computed_size_is_refused_at_parse_time():
    with pytest.raises(UnsupportedModelError, match="realized at other widths") as info:
        WidthSpace.from_module(ComputedSplit(), torch.zeros(1, 3, 8, 8))
    assert "\n" not in str(info.value)


class TwoParamWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 3, 1, 1))
        self.w2 = nn.Parameter(torch.randn(4, 3, 1, 1))

    def forward(self, x):
        return F.conv2d(x, self.w1 + self.w2)


def test_conv_weight_computed_from_two_parameters_is_refused():
    with pytest.raises(UnsupportedModelError, match="weight is computed in a way"):
        WidthSpace.from_module(TwoParamWeight(), torch.zeros(1, 3, 8, 8))


class Blur(nn.Module):
    """A conv, then a fixed depthwise filter from a buffer (as timm's BlurPool2d)."""

    def __init__(self, same: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.channels = 8
        filt = torch.ones(8, 1, 3, 3) / 9
        if not same:
            filt[0] *= 2
        self.register_buffer("filt", filt)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = F.conv2d(self.conv(x), self.filt, padding=1, groups=self.channels)
        return self.fc(x.mean((2, 3)))


def test_fixed_filter_follows_its_width_or_keeps_it():
    space = WidthSpace.from_module(Blur(), torch.zeros(1, 3, 8, 8))
    filt = next(lay for lay in space.layers if lay.kind == "filter")
    assert (filt.name, filt.params, filt.macs) == ("filt", 0, 8 * 9 * 64)
    g = filt.out_groups[0]
    model = space.realize({g: 16})
    assert model.filt.shape == (16, 1, 3, 3) and model.channels == 16
    assert torch.equal(model.filt, torch.ones(16, 1, 3, 3) / 9)
    assert count(model, (3, 8, 8)) == (space.params({g: 16}), space.macs({g: 16}))
    # filters that differ per channel cannot follow a new width: the group is fixed
    fixed = WidthSpace.from_module(Blur(same=False), torch.zeros(1, 3, 8, 8))
    assert fixed.groups[g].fixed and "differ per channel" in fixed.groups[g].note


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
