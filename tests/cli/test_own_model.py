"""A model of the user's own (``FILE.py:NAME``, ``package.module:NAME``) through the commands:
inspect, reconfig -o, export (the written module imported and built), a study-file search, the
width file's record of the source, and every way the reference can be wrong (one line, exit 2,
nothing written)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import count
from widthsearch import create_model
from widthsearch.cli import main
from widthsearch.errors import ModelRefError, WidthSearchWarning
from widthsearch.models.widthfile import load_width_file
from widthsearch.space.source import ModelRef, parse_model_kwargs
from widthsearch.space.width_space import WidthSpace

DATA = Path(__file__).parent / "data"
SIZE = (3, 16, 16)
KWARGS = {"widths": [8, 16, 16], "num_classes": 10}
MODEL = ["tiny_cnn.py:TinyCNN", "--input-size", "3,16,16", "--model-kwargs", json.dumps(KWARGS)]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A folder holding ``tiny_cnn.py``, made the current one (references are relative)."""
    shutil.copy(DATA / "tiny_cnn.py", tmp_path / "tiny_cnn.py")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _reconfig(capsys, out: str = "w.json") -> dict:
    code, _, err = _run(capsys, "reconfig", *MODEL, "--same-flops", "--divisor", "4", "-o", out)
    assert code == 0, err
    return json.loads(Path(out).read_text())


def test_model_ref_forms():
    assert ModelRef.parse("resnet18").is_timm
    ref = ModelRef.parse("nets/tiny.py:TinyCNN", {"widths": [8]})
    assert (ref.kind, ref.target, ref.name, ref.describe(), ref.slug) == (
        "file",
        "nets/tiny.py",
        "TinyCNN",
        "nets/tiny.py:TinyCNN",
        "TinyCNN",
    )
    assert ModelRef.parse("pkg.nets:make_net").kind == "module"
    for bad in ("pkg.nets:1x", "hf-hub:timm/resnet", "a b:Net"):
        with pytest.raises(ModelRefError):
            ModelRef.parse(bad)
    assert parse_model_kwargs('{"a": [1, 2]}') == {"a": [1, 2]}


def test_inspect_counts_what_the_users_model_has(capsys, here):
    code, out, err = _run(capsys, "inspect", *MODEL, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["model"], info["timm_kwargs"]) == ("tiny_cnn.py:TinyCNN", KWARGS)
    model = _import(here / "tiny_cnn.py", "tiny_cnn_direct").TinyCNN(**KWARGS)
    assert (info["params"], info["macs"]) == count(model, SIZE)
    widths = [g["width"] for g in info["groups"]]
    assert widths == [3, 8, 16, 16, 16, 10]  # the residual block's inner conv: a group of its own


def test_reconfig_records_the_source_and_export_rebuilds_it(capsys, here, tmp_path_factory):
    data = _reconfig(capsys)
    assert data["model"] == "tiny_cnn.py:TinyCNN"
    assert data["model_kwargs"] == KWARGS and "timm_kwargs" not in data
    assert data["model_sha256"] == hashlib.sha256((here / "tiny_cnn.py").read_bytes()).hexdigest()
    widths = [g["width"] for g in data["groups"]]
    assert widths != [g["base"] for g in data["groups"]]

    code, out, err = _run(capsys, "export", "w.json", "--py", "tiny_ws.py")
    assert code == 0, err
    assert "tiny_ws.create_model()" in out
    module = _import(here / "tiny_ws.py", "tiny_ws")
    assert "tiny_cnn.py" in module.__doc__  # says what it needs at load time
    model = module.create_model()
    assert count(model, SIZE) == (data["params"], data["macs"])
    assert model(torch.zeros(2, *SIZE)).shape == (2, 10)
    assert module.create_model(num_classes=4)(torch.zeros(1, *SIZE)).shape == (1, 4)
    assert count(create_model("w.json"), SIZE) == (data["params"], data["macs"])  # no export

    # from another folder, the module finds the file where it was exported
    monkey = pytest.MonkeyPatch()
    monkey.chdir(tmp_path_factory.mktemp("elsewhere"))
    try:
        assert count(module.create_model(), SIZE) == (data["params"], data["macs"])
    finally:
        monkey.undo()


def test_a_changed_source_warns_in_one_line_or_is_refused(capsys, here):
    _reconfig(capsys)
    source = here / "tiny_cnn.py"
    source.write_text(source.read_text() + "\n# an edit that leaves the layers alone\n")
    code, _, err = _run(capsys, "export", "w.json", "--py", "a.py")
    assert code == 0 and (here / "a.py").exists()
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("widthsearch: warning: tiny_cnn.py changed since the width file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", WidthSearchWarning)
        with pytest.raises(WidthSearchWarning):
            load_width_file("w.json").space()

    # conv biases: the same groups and layers at other costs, so the widths apply, and the
    # costs warning blames the changed file rather than a hand edit
    source.write_text(source.read_text().replace("bias=False", "bias=True"))
    with pytest.warns(WidthSearchWarning) as caught:
        load_width_file("w.json").space()
    messages = [str(w.message) for w in caught]
    assert any("the widths apply" in m for m in messages)
    assert any("file records (tiny_cnn.py changed?)" in m for m in messages)

    source.write_text(
        source.read_text().replace("nn.ReLU(),", "nn.ReLU(), nn.Conv2d(c_out, c_out, 1),")
    )
    code, _, err = _run(capsys, "export", "w.json", "--py", "b.py")
    assert code == 2 and not (here / "b.py").exists()
    assert len(err.strip().splitlines()) == 1
    assert "tiny_cnn.py changed since the width file was made" in err
    assert "does not match" in err


def test_module_reference_and_the_factory_for_other_processes(capsys, here, monkeypatch):
    monkeypatch.syspath_prepend(str(here))
    space = WidthSpace.from_ref("tiny_cnn:make_tiny", input_size=SIZE, widths=[8, 16, 16])
    assert space.model == "tiny_cnn:make_tiny" and space.timm_kwargs == {"widths": [8, 16, 16]}
    assert space.ref.sha256() == hashlib.sha256((here / "tiny_cnn.py").read_bytes()).hexdigest()
    factory = pickle.loads(pickle.dumps(space._factory))  # what a worker process receives
    assert sum(p.numel() for p in factory().parameters()) == space.params()


def test_verify_builds_the_users_model_from_the_width_file(capsys, here):
    from widthsearch.verify.latency import model_builder
    from widthsearch.verify.plan import plan_from_width_files, training_setting

    _reconfig(capsys)
    plan = plan_from_width_files(["w.json"])
    assert plan.space.model == "tiny_cnn.py:TinyCNN"
    setting = training_setting(plan.space, (3, 12, 12), num_classes=4)
    cand = plan.candidates[0]
    model = model_builder(plan.space, cand.widths, 4)()
    widths = [
        w if not g.fixed else b
        for g, w, b in zip(setting.groups, cand.widths, setting.base_widths, strict=True)
    ]
    assert sum(p.numel() for p in model.parameters()) == setting.params(widths)
    assert model(torch.zeros(1, 3, 12, 12)).shape == (1, 4)


def test_study_file_search_of_the_users_model(capsys, here):
    (here / "study.toml").write_text(
        'model = "tiny_cnn.py:TinyCNN"\ninput_size = [3, 16, 16]\n\n'
        "[model_kwargs]\nwidths = [8, 16, 16]\nnum_classes = 10\n\n"
        '[search]\ntrials = 2\nsampler = "random"\nseed = 0\n'
    )
    code, out, err = _run(capsys, "search", "--config", "study.toml", "--storage", "s.db", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["study"] == "TinyCNN" and info["model"] == "tiny_cnn.py:TinyCNN"
    assert info["trials"] == 2
    space = WidthSpace.from_ref("tiny_cnn.py:TinyCNN", input_size=SIZE, **KWARGS)
    for t in info["front"]:
        assert (t["params"], t["macs"]) == (space.params(t["widths"]), space.macs(t["widths"]))


BAD = {
    "missing file": (["nope.py:TinyCNN"], "there is no file 'nope.py'"),
    "missing name": (
        ["tiny_cnn.py:TinyCnn"],
        "has no class or function 'TinyCnn' (did you mean 'TinyCNN'?)",
    ),
    "import fails": (
        ["broken_import.py:Net"],
        "importing broken_import.py failed: ZeroDivisionError",
    ),
    "factory raises": (["tiny_cnn.py:broken"], "raised RuntimeError: this factory always fails"),
    "not a module": (["tiny_cnn.py:not_a_model"], "returned a dict, not a torch nn.Module"),
    "bad kwargs": (
        ["tiny_cnn.py:TinyCNN", "--model-kwargs", "{widths: 8}"],
        "--model-kwargs is not JSON",
    ),
    "kwargs not an object": (
        ["tiny_cnn.py:TinyCNN", "--model-kwargs", "[8, 16]"],
        "must be a JSON object",
    ),
    "no module": (["no_such_pkg.nets:Net"], "no module 'no_such_pkg'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_reference_is_one_line_exit_2_and_writes_nothing(capsys, here, case):
    (here / "broken_import.py").write_text("import torch\nWIDTH = 1 / 0\n")
    argv, message = BAD[case]
    code, _, err = _run(
        capsys, "reconfig", *argv, "--input-size", "16", "--same-flops", "-o", "w.json"
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not (here / "w.json").exists()
