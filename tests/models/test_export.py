"""timm-native definitions and exported modules: the same weights shapes as the generic
rebuild, and modules that build in a fresh process with only torch and timm."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import SMALL, ZOO, zoo_space
from tests.space.test_zoo import PARSED, TINY, tiny_space
from widthsearch.cli import main
from widthsearch.models.export import export
from widthsearch.models.native import build_spec
from widthsearch.models.widthfile import save_width_file
from widthsearch.solve.reconfigure import reconfigure
from widthsearch.space import _portable

NATIVE = {
    "efficientnet_b0": "efficientnet",
    "efficientnet_b3": "efficientnet",
    "tf_efficientnet_b0": "efficientnet",
    "mobilenetv2_100": "efficientnet",
    "mobilenetv3_large_100": "mobilenetv3",
    "resnet50": "resnet",
    "resnext50_32x4d": "resnet",
    "mobilenet_edgetpu_v2_xs": "efficientnet",  # grouped EdgeResiduals: timm takes group sizes
}


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NATIVE))
@pytest.mark.parametrize("mode", ["precrop", "preconfig"])
def test_native_definition_matches_generic_rebuild(name, mode):
    space = zoo_space(name)
    budget = {"params": space.params() // 2} if mode == "precrop" else {"macs": space.macs()}
    widths = reconfigure(space, mode=mode, baselines=(), **budget).widths
    spec = build_spec(space, widths)
    assert spec["family"] == NATIVE[name]
    native = _portable.build(spec)
    assert type(native) is type(space.realize())
    assert _shapes(native) == _shapes(space.realize(widths))
    if spec["family"] != "resnet":  # timm's block builder sets every width by itself
        assert _shapes(_portable.build({**spec, "layers": []})) == _shapes(native)


def test_resnet_falls_back_where_timm_would_change_downsampling():
    space = zoo_space("resnet18")
    stem = next(lay for lay in space.layers if lay.name == "conv1").out_groups[0]
    widths = list(space.base_widths)
    widths[stem] = 96  # stem and layer1 share a group; timm fixes the plain stem at 64
    spec = build_spec(space, widths)
    assert spec["native"] is None
    assert _shapes(_portable.build(spec)) == _shapes(space.realize(widths))


def _width_file(tmp_path, name, space=None, **budget):
    space = space or zoo_space(name)
    budget = budget or {"params": space.params() // 2, "mode": "precrop"}
    result = reconfigure(space, baselines=(), **budget)
    path = tmp_path / f"{name}_{budget.get('mode', 'preconfig')}.json"
    save_width_file(path, result, space)
    return path


_CHECK = r"""
import importlib, json, sys
sys.modules["widthsearch"] = None  # exported modules must need only torch and timm
sys.path.insert(0, sys.argv[1])
import torch, timm
from torch.utils.flop_counter import FlopCounterMode
out = {}
for module, name, size in json.loads(sys.argv[2]):
    mod = importlib.import_module(module)
    model = timm.create_model(name).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, *size))
    res = {"params": sum(p.numel() for p in model.parameters()), "macs": fc.get_total_flops() // 2,
           "predicted": mod.PREDICTED}
    if len(sys.argv) > 3:
        from timm.data import resolve_data_config
        res["cfg"] = model.pretrained_cfg
        res["registry"] = timm.models.get_pretrained_cfg(name).to_dict()
        res["data"] = resolve_data_config({}, model=model)
        res["listed_with_weights"] = name in timm.list_models(pretrained=True)
        ten = timm.create_model(name, num_classes=10).eval()
        res["ten_classes"] = ten.pretrained_cfg["num_classes"]
        res["ten"] = list(ten(torch.zeros(2, *size)).shape)
        feats = timm.create_model(name, features_only=True).eval()(torch.zeros(1, *size))
        res["features"] = [f.shape[1] for f in feats]
    out[name] = res
print(json.dumps(out))
"""


def _run_check(tmp_path, entries, extra=False):
    args = [sys.executable, "-c", _CHECK, str(tmp_path), json.dumps(entries)]
    proc = subprocess.run(args + (["extra"] if extra else []), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_exported_efficientnet_b0_same_flops_in_a_fresh_process(tmp_path, capsys):
    space = zoo_space("efficientnet_b0")
    path = _width_file(tmp_path, "efficientnet_b0", macs=space.macs())
    py = tmp_path / "my_models.py"
    assert main(["export", str(path), "--py", str(py)]) == 0
    assert 'timm.create_model("efficientnet_b0_ws")' in capsys.readouterr().out
    source = py.read_text()
    assert "widthsearch" not in source.split('"""', 2)[2].replace("widthsearch export", "")
    data = json.loads(path.read_text())
    res = _run_check(tmp_path, [["my_models", "efficientnet_b0_ws", list(SMALL)]], extra=True)
    got = res["efficientnet_b0_ws"]
    assert (got["params"], got["macs"]) == (data["params"], data["macs"])
    assert got["predicted"]["params"] == data["params"]
    assert got["ten"] == [2, 10]
    # the new model names itself and points at no weights; timm's data config still resolves
    for cfg in (got["cfg"], got["registry"]):
        assert cfg["architecture"] == "efficientnet_b0_ws"
        assert not {"url", "hf_hub_id", "file", "tag"} & cfg.keys()
        assert cfg["input_size"] == list(SMALL)  # the size the widths were found at
    assert got["data"]["input_size"] == list(SMALL)
    assert got["data"]["mean"] == [0.485, 0.456, 0.406]
    assert got["data"]["interpolation"] == "bicubic"
    assert not got["listed_with_weights"]
    assert got["ten_classes"] == 10
    out_width = {lay.name: lay.out_groups[0] for lay in space.layers}
    ends = [
        "blocks.0.0.conv_pw",
        "blocks.1.1.conv_pwl",
        "blocks.2.1.conv_pwl",
        "blocks.4.2.conv_pwl",
        "blocks.6.0.conv_pwl",
    ]  # the stage ends timm's EfficientNetFeatures returns
    assert got["features"] == [data["groups"][out_width[n]]["width"] for n in ends]


@pytest.mark.slow
def test_exported_zoo_round_trip(tmp_path):
    entries = []
    files = {}
    for name in ZOO:
        path = _width_file(tmp_path, name)
        module = f"m_{name}"
        entrypoint = export(path, tmp_path / f"{module}.py", name=f"{name}_ws_test")
        entries.append([module, entrypoint, list(SMALL)])
        files[entrypoint] = json.loads(path.read_text())
    res = _run_check(tmp_path, entries)
    for entrypoint, data in files.items():
        assert (res[entrypoint]["params"], res[entrypoint]["macs"]) == (
            data["params"],
            data["macs"],
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hardcorenas_a", "resnest50d_1s4x24d"])
def test_spec_falls_back_where_timm_cannot_build_it(name):
    # hardcorenas builds its MobileNetV3 without _create_mnv3; ResNeSt's blocks are not the
    # BasicBlock/Bottleneck that timm's ResNet ``channels`` describe
    space = tiny_space(name)
    for mode, budget in (("precrop", {"params": space.params() // 2}), ("preconfig", {})):
        widths = reconfigure(space, mode=mode, baselines=(), macs=space.macs(), **budget).widths
        spec = build_spec(space, widths)
        assert spec["native"] is None
        assert _shapes(_portable.build(spec)) == _shapes(space.realize(widths))


@pytest.mark.slow
def test_exported_parsed_models_round_trip(tmp_path):
    # every model that once parsed and then failed later, reshaped at its MACs (groups grow
    # and shrink), exported and built in one fresh process
    entries, files = [], {}
    for name in PARSED:
        space = tiny_space(name)
        path = _width_file(tmp_path, name, space, mode="preconfig", macs=space.macs())
        module = f"m_{name}"
        entrypoint = export(path, tmp_path / f"{module}.py", name=f"{name}_ws_test")
        entries.append([module, entrypoint, list(TINY)])
        files[entrypoint] = json.loads(path.read_text())
    res = _run_check(tmp_path, entries)
    for entrypoint, data in files.items():
        got = res[entrypoint]
        assert (got["params"], got["macs"]) == (data["params"], data["macs"]), entrypoint


def test_create_model_from_a_width_file_has_no_base_weights(tmp_path):
    from timm.data import resolve_data_config

    from widthsearch.models.factory import create_model

    model = create_model(_width_file(tmp_path, "resnet18"), num_classes=7)
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == "resnet18_ws" and cfg["num_classes"] == 7
    assert not {"url", "hf_hub_id", "file", "tag"} & cfg.keys()
    assert resolve_data_config({}, model=model)["input_size"] == SMALL


def test_export_rejects_bad_names(tmp_path, capsys):
    path = _width_file(tmp_path, "resnet18")
    assert main(["export", str(path), "--py", str(tmp_path / "x.py"), "--name", "resnet50"]) == 2
    assert "is a timm model already" in capsys.readouterr().err
    assert main(["export", str(path), "--py", str(tmp_path / "x.py"), "--name", "my-net"]) == 2
    assert "not a Python identifier" in capsys.readouterr().err
    assert main(["export", str(path), "--py", str(tmp_path / "x.txt")]) == 2
    assert not (tmp_path / "x.py").exists() and not (tmp_path / "x.txt").exists()


def test_export_of_a_bad_width_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "w.json"
    bad.write_text('{"format_version": 1, "model": "resnet18"}')
    assert main(["export", str(bad), "--py", str(tmp_path / "m.py")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks the field 'base_widths'" in err
    assert not (tmp_path / "m.py").exists()


@pytest.mark.slow
def test_exported_module_keeps_the_width_files_head_and_input_channels(tmp_path):
    """reconfig --num-classes 10 --in-chans 1: the module builds that model at those costs."""
    w = tmp_path / "w.json"
    args = ["reconfig", "resnet18", "--params", "0.5", "--mode", "precrop", "--input-size", "32"]
    assert main([*args, "--num-classes", "10", "--in-chans", "1", "-o", str(w)]) == 0
    export(w, tmp_path / "gray_models.py", name="resnet18_ws_gray")
    data = json.loads(w.read_text())
    got = _run_check(tmp_path, [["gray_models", "resnet18_ws_gray", [1, 32, 32]]])
    assert (got["resnet18_ws_gray"]["params"], got["resnet18_ws_gray"]["macs"]) == (
        data["params"],
        data["macs"],
    )
    assert got["resnet18_ws_gray"]["predicted"]["params"] == data["params"]
