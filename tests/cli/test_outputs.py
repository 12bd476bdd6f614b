"""Models with auxiliary heads and models whose output is not a tensor, through the commands
(issue 33): reconfig -o, export (the module imported, built and trained a step in train mode)
and a quick verify on digits; a model training cannot read, a forward that needs more than
the image and a factory that downloads are refused in one line, exit 2, nothing written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import count
from widthsearch.cli import main
from widthsearch.errors import StudyConfigError
from widthsearch.studyfile import parse_config

NETS = str(Path(__file__).parents[1] / "data" / "train_mode_nets.py")
QUICK = ["--max-steps", "2", "--train-subset", "32", "--batch-size", "16", "--epochs", "1"]
QUICK += ["--seeds", "0", "--latency-runs", "0"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tensors(out) -> list[torch.Tensor]:
    values = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else [out]
    return [t for t in values if isinstance(t, torch.Tensor)]


MODELS = {
    "own auxiliary head": (f"{NETS}:AuxNet", "3,16,16", {}),
    "googlenet": (
        "torchvision.models:googlenet",
        "3,32,32",
        {"num_classes": 10, "init_weights": False},
    ),
    "dict output": (f"{NETS}:DictNet", "3,16,16", {}),
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] * (c == "googlenet")) for c in MODELS]
)
def test_reconfig_export_train_step_and_verify(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, size, kwargs = MODELS[case]
    argv = [model, "--input-size", size, "--model-kwargs", json.dumps(kwargs)]
    code, out, err = _run(capsys, "reconfig", *argv, "--macs", "0.7", "-o", "w.json")
    assert code == 0, err
    if case != "dict output":
        assert "note: train-only layers" in out
    assert "note: verify trains on" in out
    data = json.loads(Path("w.json").read_text())

    code, out, err = _run(capsys, "export", "w.json", "--py", "m.py")
    assert code == 0, err
    built = _import(tmp_path / "m.py", f"m_{case.replace(' ', '_')}").create_model()
    shape = tuple(int(s) for s in size.split(","))
    assert count(built, shape) == (data["params"], data["macs"])
    built.train()
    sum(t.square().mean() for t in _tensors(built(torch.randn(2, *shape)))).backward()
    assert all(p.grad is not None for p in built.parameters())

    code, out, err = _run(capsys, "verify", "w.json", *QUICK, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert [r["kind"] for r in info["results"]] == ["candidate", "base", "control"]
    assert all(r["seeds"] == [0] and 0 <= r["top1"] <= 1 for r in info["results"])
    assert any("training reads" in n and "[batch, 10]" in n for n in info["notes"])


def test_an_output_training_cannot_read_is_refused_before_any_training(capsys, tmp_path):
    """SegNet's ``out`` is a map of class scores per pixel: verify refuses it in one line
    before training; --output cls (its image-level logits) trains."""
    w = str(tmp_path / "seg.json")
    argv = [f"{NETS}:SegNet", "--input-size", "3,16,16", "--macs", "0.7", "-o", w]
    code, out, err = _run(capsys, "reconfig", *argv)
    assert code == 0, err
    assert "not [batch, classes]: verify refuses it" in out
    csv = tmp_path / "seg-verify.csv"
    code, out, err = _run(capsys, "verify", w, *QUICK, "--out", str(csv))
    assert code == 2 and not out and not csv.exists()
    assert len(err.strip().splitlines()) == 1
    assert "output['out']" in err and "[1, 10, 16, 16] in eval mode" in err
    assert "--output KEY" in err

    code, out, err = _run(capsys, "verify", w, *QUICK, "--output", "cls", "--out", str(csv))
    assert code == 0, err
    assert "training reads the model's output['cls'] ([batch, 10])" in out
    assert csv.exists()


def test_run_refuses_such_a_model_before_its_search(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = (
        f'model = "{NETS}:SegNet"\ninput_size = [3, 16, 16]\n\n'
        '[search]\ntrials = 2\nsampler = "random"\n\n[verify]\nepochs = 1\nseeds = [0]\n'
    )
    Path("s.toml").write_text(study)
    code, out, err = _run(capsys, "run", "s.toml", "--storage", "s.db", "--max-steps", "1")
    assert code == 2 and not Path("s.db").exists()
    assert "output['out']" in err and "[verify] output" in err
    config = parse_config({**_toml(study), "verify": {"output": "cls"}})
    assert config.verify is not None and config.verify.recipe().output == "cls"
    with pytest.raises(StudyConfigError, match="verify.output"):
        parse_config({**_toml(study), "verify": {"output": 1}})


def _toml(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("TwoInputs", "TwoInputs.forward needs more than the image (it also requires 'mask')"),
        (
            "downloading",
            """tried to download weights and failed (URLError: """,
        ),
    ],
)
def test_messages_name_the_cause(name, says, capsys):
    code, out, err = _run(capsys, "inspect", f"{NETS}:{name}", "--input-size", "3,16,16")
    assert code == 2 and "params" not in out
    ours = [line for line in err.splitlines() if line.startswith("widthsearch:")]
    assert len(ours) == 1 and says in ours[0]  # (torch.hub says where it downloads first)
    if name == "downloading":  # and the argument that turns it off, which then works
        fix = """--model-kwargs '{"pretrained_backbone": false}' builds it untrained"""
        assert fix in err
        code, out, err = _run(
            capsys,
            "inspect",
            f"{NETS}:{name}",
            "--input-size",
            "3,16,16",
            "--model-kwargs",
            '{"pretrained_backbone": false}',
        )
        assert code == 0, err


def test_inspect_json_marks_train_only_layers_and_notes(capsys):
    code, out, err = _run(capsys, "inspect", f"{NETS}:AuxNet", "--input-size", "3,16,16", "--json")
    assert code == 0, err
    info = json.loads(out)
    train_only = [lay["name"] for lay in info["layers"] if lay.get("train_only")]
    assert train_only == ["aux.conv.0", "aux.conv.1", "aux.fc1", "aux.fc2"]
    assert all(lay["macs"] == 0 for lay in info["layers"] if lay.get("train_only"))
    assert any(n.startswith("verify trains on the output itself [1, 10]") for n in info["notes"])
