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
