"""Width grids and ties as data: parsing the CLI strings, resolving them on a real timm model,
and refusing what a model cannot take, in one line."""

from __future__ import annotations

import pytest

from tests.conftest import zoo_space
from widthsearch.errors import GridError
from widthsearch.space.choices import Choices, GridSpec


def test_choices_parse_multipliers_and_widths():
    c = Choices.parse("1x, 0.25x,0.5X,0.75x")
    assert c.kind == "multipliers" and c.values == (0.25, 0.5, 0.75, 1.0)
    assert c.text() == "0.25x,0.5x,0.75x,1x"
    w = Choices.parse("32,8,16,24,16")
    assert w.kind == "widths" and w.text() == "8,16,24,32"


@pytest.mark.parametrize("text", ["", "0.5x,16", "abc", "0x,1x", "20x", "0.5"])
def test_bad_choices_are_refused_in_one_line(text):
    with pytest.raises(GridError) as err:
        Choices.parse(text)
    assert "\n" not in str(err.value) and "--choices" in str(err.value)


def test_multipliers_round_each_base_and_ties_share_a_width():
    space = zoo_space("resnet18")
    spec = GridSpec.parse("0.25x,0.5x,0.75x,1x", ["layer2.*", "layer3.0.*,layer3.1.conv1"])
    lattice = spec.resolve(space, min_width=0.1, max_width=1.0)
    for g in space.groups:
        if g.fixed:
            assert lattice.grid[g.id] == (g.width,)
        else:
            assert lattice.grid[g.id] == tuple(round(m * g.width) for m in (0.25, 0.5, 0.75, 1))
    producers = [[space.groups[g].producer for g in c] for c in lattice.classes if len(c) > 1]
    assert producers == [
        ["layer2.0.conv1", "layer2.0.conv2", "layer2.1.conv1"],
        ["layer3.0.conv1", "layer3.0.conv2", "layer3.1.conv1"],
    ]
    assert len(lattice.classes) == len(space.free_groups) - 4
    assert lattice.size == 4 ** len(lattice.classes)
    widths = [g.width if g.fixed else lattice.grid[g.id][1] for g in space.groups]
    assert lattice.contains(widths)
    widths[5] = lattice.grid[5][2]  # one member of a tie moves alone: off the lattice
    assert not lattice.contains(widths)


def test_per_glob_choices_and_absolute_widths_and_round_trip():
    space = zoo_space("resnet18")
    spec = GridSpec.from_dict(
        {"choices": "8,16,24,32", "groups": {"layer4.*": "0.5x,1x"}, "ties": [["layer1.*"]]}
    )
    lattice = spec.resolve(space, min_width=0.1, max_width=1.0)
    assert lattice.grid[1] == (8, 16, 24, 32)
    assert lattice.grid[11] == (256, 512)
    assert GridSpec.from_dict(spec.to_dict()) == spec


def test_ties_and_globs_that_cannot_be_used_are_refused():
    space = zoo_space("resnet18")
    for spec, words in [
        (GridSpec.parse("0.5x,1x", "nothing.*"), "matches no group"),
        (GridSpec.parse("0.5x,1x", "fc"), "a fixed group"),
        (GridSpec.parse("0.5x,1x", "conv1,layer4.*"), "no width in common"),
        (GridSpec.parse("0.5x,1x", groups={"nothing": "1x"}), "matches no free group"),
        (GridSpec.parse("1000,2000"), "no width it can take"),
    ]:
        with pytest.raises(GridError, match=words):
            spec.resolve(space, min_width=0.1, max_width=1.0)


def test_grouped_convs_refuse_widths_that_break_their_groups():
    space = zoo_space("resnext50_32x4d")
    with pytest.raises(GridError, match="multiples of 32"):
        GridSpec.parse("0.3x,1x").resolve(space, min_width=0.1, max_width=1.0)


def test_an_absolute_grid_keeps_what_each_group_can_take_and_a_tie_clash_names_the_bases():
    """16..2048 across resnet18 (bases 64 to 512) at 0.1x-2x: each group keeps the widths its
    bounds allow, and the lattice names the groups that lost some; a tie of groups with
    different bases under common multipliers says why it fails and what to give instead."""
    space = zoo_space("resnet18")
    spec = GridSpec.parse("16,32,64,128,256,512,1024,2048")
    lattice = spec.resolve(space, min_width=0.1, max_width=2.0)
    for g in space.free_groups:
        assert lattice.grid[g.id] and all(
            0.1 * g.width <= w <= 2 * g.width for w in lattice.grid[g.id]
        )
    assert set(lattice.restricted) == {g.id for g in space.free_groups}
    assert lattice.off_base(space) == ()  # every base is a power of two here
    with pytest.raises(GridError) as err:
        GridSpec.parse("0.5x,1x", "conv1,layer4.*").resolve(space, min_width=0.1, max_width=1.0)
    message = str(err.value)
    assert "(base 64:" in message and "(base 512:" in message and "absolute widths" in message
