"""Width files and create_model: round trips on the zoo, and every bad file's clear error."""

from __future__ import annotations

import json

import pytest
import torch

import widthsearch
from tests.conftest import SMALL, ZOO, count, zoo_space
from widthsearch import WidthFileError, create_model, load_width_file
from widthsearch.models.widthfile import save_width_file
from widthsearch.solve.reconfigure import reconfigure


def _width_file(tmp_path, name, **budget):
    space = zoo_space(name)
    budget = budget or {"params": space.params() // 2}
    result = reconfigure(space, mode="precrop", baselines=(), **budget)
    path = tmp_path / f"{name}.json"
    save_width_file(path, result, space)
    return path, result


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_round_trip_reconfig_file_create_model(tmp_path, name):
    path, result = _width_file(tmp_path, name)
    model = create_model(path)
    assert count(model, SMALL) == (result.params, result.macs)
    data = json.loads(path.read_text())
    assert (data["params"], data["macs"]) == (result.params, result.macs)
    assert data["timm_version"] and data["space_fingerprint"] == zoo_space(name).fingerprint


def test_create_model_with_other_num_classes(tmp_path):
    path, result = _width_file(tmp_path, "efficientnet_b0")
    model = create_model(str(path), num_classes=10)
    assert model(torch.zeros(2, *SMALL)).shape == (2, 10)
    space = zoo_space("efficientnet_b0")
    classifier = next(lay for lay in space.layers if lay.name == "classifier")
    head_in = sum(result.widths[g] for g in classifier.in_groups)
    assert model.classifier.in_features == head_in
    assert count(model, SMALL)[0] == result.params - (1000 - 10) * (head_in + 1)


def test_create_model_features_only_keeps_the_widths(tmp_path):
    path, result = _width_file(tmp_path, "resnet18")
    model = create_model(path, features_only=True)
    feats = model(torch.zeros(1, *SMALL))
    space = zoo_space("resnet18")
    stage_out = [
        sum(result.widths[g] for g in next(lay for lay in space.layers if lay.name == n).out_groups)
        for n in ("layer1.1.conv2", "layer2.1.conv2", "layer3.1.conv2", "layer4.1.conv2")
    ]
    assert [f.shape[1] for f in feats[1:]] == stage_out
    with pytest.raises(widthsearch.WidthSearchError, match="pretrained"):
        create_model(path, pretrained=True)


def test_create_model_with_a_name_is_plain_timm():
    model = create_model("resnet18", num_classes=3)
    assert model.fc.out_features == 3


def _rewrite(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return data


def test_other_timm_version_warns_when_the_space_matches(tmp_path):
    path, result = _width_file(tmp_path, "mobilenetv2_100")
    _rewrite(path, timm_version="0.9.0")
    with pytest.warns(UserWarning, match="timm 0.9.0"):
        model = create_model(path)
    assert count(model, SMALL) == (result.params, result.macs)


def test_other_timm_version_fails_when_the_space_changed(tmp_path):
    path, _ = _width_file(tmp_path, "mobilenetv2_100")
    _rewrite(path, timm_version="0.9.0", space_fingerprint="0" * 16)
    with pytest.raises(WidthFileError, match="parses it differently from timm 0.9.0"):
        create_model(path)


def _groups(path):
    return json.loads(path.read_text())["groups"]


@pytest.mark.parametrize(
    "change,match",
    [
        ({"format_version": 99}, "format_version 99; this widthsearch reads 1, 2"),
        ({"groups": [{"id": 0, "base": 3}]}, "a group lacks the field 'width'"),
        ({"groups": "wide"}, "'groups' must be a list of objects"),
        ({"groups": [{"id": 1, "base": 3, "width": 3}]}, r"groups\[0\] has id 1"),
        ({"timm_kwargs": [1]}, "'timm_kwargs' must be an object"),
    ],
)
def test_bad_width_files(tmp_path, change, match):
    path, _ = _width_file(tmp_path, "resnet18")
    _rewrite(path, **change)
    with pytest.raises(WidthFileError, match=match):
        load_width_file(path)


def test_groups_that_are_not_the_models_are_refused(tmp_path):
    path, _ = _width_file(tmp_path, "resnet18")
    _rewrite(path, groups=_groups(path)[:-1])
    with pytest.raises(WidthFileError, match="does not match the width file"):
        create_model(path)


def test_width_file_for_another_model(tmp_path):
    path, _ = _width_file(tmp_path, "resnet18")
    with pytest.raises(WidthFileError, match="for 'resnet18', not 'resnet50'"):
        load_width_file(path, model="resnet50")
    wf = load_width_file(path)
    with pytest.raises(WidthFileError, match="is for 'resnet18', not 'resnet50'"):
        zoo_space("resnet50").realize(wf)


def test_negative_width_is_named(tmp_path):
    path, _ = _width_file(tmp_path, "resnet18")
    groups = _groups(path)
    groups[3]["width"] = -groups[3]["width"]
    _rewrite(path, groups=groups)
    with pytest.raises(WidthFileError, match=r"groups\[3\]\.width is -"):
        load_width_file(path)


def test_widths_are_stored_once_and_the_readable_copy_counts(tmp_path):
    """Editing a group's width where the file names its layer changes the model built."""
    path, result = _width_file(tmp_path, "efficientnet_b0")
    data = json.loads(path.read_text())
    assert "widths" not in data and "base_widths" not in data and data["format_version"] == 2
    groups = data["groups"]
    g = next(g for g in groups if g["producer"] == "blocks.5.0.conv_pwl")
    g["width"] += 16
    _rewrite(path, groups=groups)
    space = zoo_space("efficientnet_b0")
    edited = list(result.widths)
    edited[g["id"]] += 16
    with pytest.warns(UserWarning, match="edited by hand"):
        model = create_model(path)
    assert count(model, SMALL) == (space.params(edited), space.macs(edited))
    assert space.params(edited) > result.params


def test_version_1_files_are_read_and_refused_when_their_copies_disagree(tmp_path):
    path, result = _width_file(tmp_path, "mobilenetv2_100")
    data = json.loads(path.read_text())
    v1 = {
        **data,
        "format_version": 1,
        "base_widths": [g["base"] for g in data["groups"]],
        "widths": [g["width"] for g in data["groups"]],
    }
    path.write_text(json.dumps(v1))
    assert load_width_file(path).widths == result.widths
    assert count(create_model(path), SMALL) == (result.params, result.macs)
    v1["groups"][5]["width"] += 8  # the readable copy, which version 1 ignored
    path.write_text(json.dumps(v1))
    with pytest.raises(WidthFileError, match=r"group 5 .* disagree"):
        load_width_file(path)


def test_a_width_far_beyond_its_base_is_refused_with_the_predicted_size(tmp_path):
    path, result = _width_file(tmp_path, "resnet18")
    groups = _groups(path)
    g = next(g for g in groups if g["producer"] == "layer3.0.conv1")
    g["width"] = 20 * g["base"]
    _rewrite(path, groups=groups)
    space = zoo_space("resnet18")
    widths = list(result.widths)
    widths[g["id"]] = g["width"]
    with pytest.raises(WidthFileError, match="20.0x its base") as err:
        create_model(path)
    assert f"{space.params(widths):,} params" in str(err.value)
    assert f"{space.macs(widths):,} MACs" in str(err.value)


def test_not_json_and_missing(tmp_path):
    path = tmp_path / "w.json"
    path.write_bytes(b"\x00\xff garbage")
    with pytest.raises(WidthFileError, match="not a JSON width file"):
        load_width_file(path)
    with pytest.raises(WidthFileError, match="no width file"):
        create_model(tmp_path / "absent.json")


@pytest.mark.slow
def test_width_space_realize_takes_a_loaded_width_file_as_the_readme_writes_it(tmp_path):
    """`WidthSpace.realize(load_width_file("widths.json"))` on the class builds the file's space
    and its model; on a space it checks the file against that space."""
    from widthsearch import WidthSpace

    path, result = _width_file(tmp_path, "resnet18")
    model = WidthSpace.realize(load_width_file(path))
    assert count(model, SMALL) == (result.params, result.macs)
    space = zoo_space("resnet18")
    assert count(space.realize(load_width_file(path)), SMALL) == (result.params, result.macs)
    assert count(WidthSpace.realize(space, result.widths), SMALL) == (result.params, result.macs)
    with pytest.raises(TypeError, match="call it on a space: space.realize"):
        WidthSpace.realize(list(result.widths))
