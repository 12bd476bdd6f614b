"""The ``widthsearch inspect`` command, in process and as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys

from widthsearch.cli import main


def test_inspect_efficientnet_b0_console_script():
    """The issue's acceptance numbers, through the real entry point at 224x224."""
    proc = subprocess.run(
        [sys.executable, "-m", "widthsearch.cli", "inspect", "efficientnet_b0", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(proc.stdout)
    assert info["model"] == "efficientnet_b0"
    assert info["params"] == 5_288_548
    assert info["macs"] == 385_814_752
    assert {"id", "width", "fixed", "layers"} <= set(info["groups"][0])
    assert sum(g["fixed"] for g in info["groups"]) == 2


def test_inspect_table(capsys):
    assert main(["inspect", "resnet18", "--input-size", "3,64,64"]) == 0
    out = capsys.readouterr().out
    assert "resnet18 at 3x64x64" in out
    assert "params 11,689,512" in out
    assert "layer1.0.conv1" in out


def test_inspect_unknown_model_exits_2_with_one_line(capsys):
    assert main(["inspect", "resnet19"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown model 'resnet19'" in err and "resnet18" in err


def test_inspect_unsupported_model_exits_2(capsys):
    assert main(["inspect", "vit_tiny_patch16_224"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot analyse module" in err


def test_reconfig_same_flops_json_and_width_file(capsys, tmp_path):
    """The main job at 224x224: MACs within the base, SynExp up, width file realizes exactly."""
    from widthsearch import WidthSpace
    from widthsearch.widthfile import load_width_file

    from .conftest import count

    out = tmp_path / "w.json"
    assert main(["reconfig", "efficientnet_b0", "--same-flops", "--json", "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mode"] == "preconfig"
    assert info["macs"] <= info["base_macs"] == 385_814_752
    assert info["log_synexp_gain"] > 0
    assert {"model", "base_params", "params", "widths", "solve_seconds"} <= set(info)
    wf = load_width_file(out)
    space = WidthSpace.from_timm(wf.model, input_size=wf.input_size)
    model = space.realize(wf)
    assert count(model, wf.input_size) == (info["params"], info["macs"])
    assert wf.data["params"] == info["params"] and wf.data["format_version"] == 2


def test_reconfig_table_names_baselines_and_totals(capsys):
    args = [
        "reconfig",
        "mobilenetv2_100",
        "--params",
        "0.5",
        "--mode",
        "precrop",
        "--input-size",
        "64",
        "--baselines",
        "uniform",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "PreCrop" in out and "uniform multiplier" in out
    assert "params" in out and "MACs" in out and "FLOPs" in out
    assert "log SynExp gain over the base model" in out


def test_reconfig_infeasible_budget_exits_2_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "w.json"
    code = main(["reconfig", "resnet18", "--params", "0.01", "--input-size", "64", "-o", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "below the" in err and "reachable with --min-width 0.1" in err
    assert not out.exists()


def test_reconfig_needs_a_budget(capsys):
    assert main(["reconfig", "resnet18"]) == 2
    assert "give a budget" in capsys.readouterr().err


def test_width_file_errors(tmp_path):
    import pytest

    from widthsearch.widthfile import WidthFileError, load_width_file

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WidthFileError, match="not a JSON width file"):
        load_width_file(bad)
    bad.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(WidthFileError, match="format_version 99"):
        load_width_file(bad)
    with pytest.raises(WidthFileError, match="no width file"):
        load_width_file(tmp_path / "missing.json")
