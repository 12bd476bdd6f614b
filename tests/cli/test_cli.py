"""The ``widthsearch inspect`` command, in process and as the installed console script."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from widthsearch.cli import main


@pytest.mark.slow
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


def test_inspect_says_which_groups_splits_restrict(capsys):
    assert main(["inspect", "cs3darknet_s", "--input-size", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "groups restricted by splits or constants" in out
    assert "tied: 2 equal pieces of 'split' in module 'stages.0' (CrossStage3)" in out
    assert "split sizes set on realization: stages.0.expand_chs" in out
    assert main(["inspect", "cs3darknet_s", "--input-size", "3,32,32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size_attrs"][0]["name"] == "stages.0.expand_chs"
    tied = [g for g in info["groups"] if g["note"]]
    assert info["size_attrs"][0]["value"] == 2 * tied[0]["width"]


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
    from tests.conftest import count
    from widthsearch import WidthSpace
    from widthsearch.models.widthfile import load_width_file

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
    assert "below the" in err and "reachable with --min-width=0.1" in err
    assert not out.exists()


def test_reconfig_needs_a_budget(capsys):
    assert main(["reconfig", "resnet18"]) == 2
    assert "give a budget" in capsys.readouterr().err


def test_width_file_errors(tmp_path):
    import pytest

    from widthsearch.models.widthfile import WidthFileError, load_width_file

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WidthFileError, match="not a JSON width file"):
        load_width_file(bad)
    bad.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(WidthFileError, match="format_version 99"):
        load_width_file(bad)
    with pytest.raises(WidthFileError, match="no width file"):
        load_width_file(tmp_path / "missing.json")


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------------- bounds (item 1)
def test_reconfig_max_width_the_grid_cannot_meet_exits_2_and_writes_nothing(capsys, tmp_path):
    """The issue's case at 224x224: it printed the unchanged base model under 'up to 0.5x'."""
    out = tmp_path / "w.json"
    args = ["reconfig", "efficientnet_b0", "--same-flops", "--max-width", "0.5", "-o", str(out)]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = _one_line(captured.err)
    assert "leave 6 channel groups without a width" in err
    assert "raise --max-width to 1 or lower --divisor to 2" in err
    assert captured.out == "" and not out.exists()
    assert main([*args, "--divisor", "2"]) == 2  # now every group has a width, but no budget binds
    err = _one_line(capsys.readouterr().err)
    assert "no budget binds" in err and "lower the budget or raise --max-width" in err
    assert not out.exists()


def test_reconfig_states_the_bounds_it_applied(capsys):
    args = ["reconfig", "resnet18", "--params", "0.2", "--max-width", "0.5", "--input-size", "32"]
    assert main([*args, "--mode", "precrop"]) == 0  # PreCrop took only --max-width 1 before
    out = capsys.readouterr().out
    assert "PreCrop, channels removed only (widths 0.1x-0.5x base, multiples of 8)" in out
    assert "rounding to multiples of 8 cost -" not in out
    assert "latency: not budgeted" not in out  # PreCrop only removes channels
    # PreConfig on MACs or params alone says that latency is not held, and how to hold it
    assert main(args) == 0
    assert "latency: not budgeted, and equal MACs can run slower than the base (docs: " in (
        capsys.readouterr().out
    )
    assert main([*args, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    ratios = [g["width"] / g["base"] for g in info["groups"]][1:-1]
    assert info["max_width"] == 0.5 and max(ratios) <= 0.5
    assert info["rounding_loss"] >= 0


# ------------------------------------------------------------------------- baselines (item 2)
def test_reconfig_default_compares_with_the_uniform_multiplier_only(capsys):
    """SynFlow (20 s to minutes) is opt-in, so a params budget answers in seconds."""
    args = ["reconfig", "mobilenetv2_100", "--params", "0.5", "--input-size", "32", "--json"]
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in info["baselines"]] == ["uniform"]
    assert main([*args, "--baselines", "uniform,synlow"]) == 2
    assert "unknown baseline synlow" in _one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_reconfig_ctrl_c_in_synflow_keeps_the_printed_result_and_the_width_file(tmp_path):
    """The result is printed and -o written before SynFlow starts; Ctrl-C there ends in one line."""
    import signal
    import time

    out = tmp_path / "w.json"
    cmd = [sys.executable, "-m", "widthsearch.cli", "reconfig", "mobilenetv2_100"]
    cmd += ["--params", "0.5", "--input-size", "64", "--baselines", "synflow", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("widths written to"):
            break
    time.sleep(1.0)  # well inside SynFlow's 100 rounds (several seconds here)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert _one_line(err) == (
        f"widthsearch: interrupted during the synflow baseline; the result above is complete; "
        f"{out} is written"
    )
    text = "".join(lines) + rest
    assert "log SynExp gain over the base model" in text and "time: parse" in text
    from widthsearch.models.widthfile import load_width_file

    wf = load_width_file(out)
    assert wf.data["params"] <= 0.5 * wf.data["base_params"]


# ---------------------------------------------------------------------- bad input (item 4)
@pytest.mark.parametrize(
    "args,match",
    [
        (["reconfig", "resnet18", "--params", "0.5", "-o", "nodir/w.json"], "no folder 'nodir'"),
        (["reconfig", "resnet18", "--params", "1e400"], "budget '1e400' is too large"),
        (["reconfig", "resnet18", "--macs", "1e400G"], "budget '1e400G' is too large"),
        (["reconfig", "resnet18", "--params", "0.5", "--baselines", "random"], "unknown baseline"),
    ],
)
def test_reconfig_input_mistakes_are_one_line_before_any_work(
    capsys, tmp_path, monkeypatch, args, match
):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert match in _one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_export_output_mistakes_are_one_line_and_write_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["reconfig", "resnet18", "--params", "0.5", "--mode", "precrop", "--input-size", "32"]
    assert main([*args, "-o", "w.json"]) == 0
    capsys.readouterr()
    assert main(["export", "w.json", "--py", "nodir/x.py"]) == 2
    assert "--py nodir/x.py: there is no folder 'nodir'" in _one_line(capsys.readouterr().err)
    assert main(["export", "w.json", "--py", "my-models.py"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "'my-models' is not a Python module name" in err and "my_models.py" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]


def test_input_size_in_timms_spelling(capsys):
    assert main(["inspect", "resnet18", "--input-size", "3", "32", "48", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == [3, 32, 48]
    assert main(["inspect", "resnet18", "--input-size", "3x32x32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == [3, 32, 32]
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "--input-size", "32", "resnet18"])
    assert exc.value.code == 2
    assert "give the model name before --input-size" in capsys.readouterr().err


# ---------------------------------------------------------------------- flags (item 11)
def test_version(capsys):
    from widthsearch import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"widthsearch {__version__} (timm ")


def test_every_command_has_a_description():
    from widthsearch.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) == len(COMMANDS) == 10  # with profile and bench
    for name, parser in sub.choices.items():
        assert parser.description and len(parser.description) > 40, name


def test_num_classes_and_in_chans_reach_timm_costs_and_the_width_file(capsys, tmp_path):
    """A 10-class head: the costs printed, the width file and the model built all have it."""
    from tests.conftest import count
    from widthsearch import create_model
    from widthsearch.models.widthfile import load_width_file

    out = tmp_path / "w.json"
    args = ["reconfig", "resnet18", "--params", "0.5", "--mode", "precrop", "--input-size", "32"]
    assert main([*args, "--num-classes", "10", "--in-chans", "1", "--json", "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["timm_kwargs"] == {"num_classes": 10, "in_chans": 1}
    assert info["input_size"] == [1, 32, 32]
    assert info["base_params"] == 11_689_512 - 1000 * 513 + 10 * 513 - 2 * 64 * 49
    wf = load_width_file(out)
    assert dict(wf.timm_kwargs) == {"num_classes": 10, "in_chans": 1}
    model = create_model(out)
    assert model.fc.out_features == 10 and model.conv1.in_channels == 1
    assert count(model, (1, 32, 32)) == (info["params"], info["macs"])
    assert main(["inspect", "resnet18", "--in-chans", "1", "--input-size", "3,32,32"]) == 2
    assert "has 3 channels but --in-chans is 1" in _one_line(capsys.readouterr().err)
