"""``--choices`` and ``--tie`` on the command line: reconfig picks on the grid and records it in
its JSON and width file, inspect shows the lattice, and mistakes are one line, exit 2, before
any model is analysed."""

from __future__ import annotations

import json

import pytest

from widthsearch.cli import main
from widthsearch.models.widthfile import load_width_file
from widthsearch.space.choices import GridSpec

ARGS = ["resnet18", "--input-size", "3", "32", "32"]


@pytest.mark.slow
def test_reconfig_on_a_grid_with_a_tie_json_and_width_file(capsys, tmp_path):
    out = tmp_path / "w.json"
    code = main(
        ["reconfig", *ARGS, "--macs", "0.4", "--mode", "precrop", "--choices", "0.5x,0.75x,1x"]
        + ["--tie", "layer4.*", "--json", "-o", str(out)]
    )
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["grid"] == {"choices": "0.5x,0.75x,1x", "groups": {}, "ties": [["layer4.*"]]}
    assert info["lattice"]["exact"] and info["macs"] <= info["budgets"]["macs"]
    groups = info["groups"]
    for g in groups[1:-1]:
        assert g["width"] in {round(m * g["base"]) for m in (0.5, 0.75, 1.0)}
    assert len({g["width"] for g in groups if g["producer"].startswith("layer4.")}) == 1
    uniform = info["baselines"][0]
    assert uniform["name"] == "uniform" and uniform["macs"] <= info["budgets"]["macs"]
    wf = load_width_file(out)
    assert wf.grid == GridSpec.parse("0.5x,0.75x,1x", "layer4.*")
    assert list(wf.widths) == [g["width"] for g in groups]


@pytest.mark.parametrize(
    "extra, words",
    [(["--choices", "0.5x,16"], "neither multipliers"), (["--tie", " , "], "names no group")],
)
def test_grid_mistakes_are_one_line_before_any_work(capsys, tmp_path, extra, words):
    out = tmp_path / "w.json"
    assert main(["reconfig", "no_such_model", "--macs", "0.5", *extra, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and not out.exists()


@pytest.mark.slow
def test_inspect_shows_the_lattice(capsys):
    assert main(["inspect", *ARGS, "--choices", "0.25x,1x", "--tie", "layer2.*", "--json"]) == 0
    lattice = json.loads(capsys.readouterr().out)["lattice"]
    assert lattice["points"] == 2**10 and lattice["ties"] == [[4, 5, 6]]
    assert lattice["grid"][1] == [16, 64] and lattice["tie_of"] == {"4": "t1", "5": "t1", "6": "t1"}
