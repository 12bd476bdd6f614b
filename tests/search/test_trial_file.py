"""Item 2 of issue 27: a search trial becomes a width file (``front --trial N -o``) that
``export``, ``verify`` and ``create_model`` take, with exactly the trial's widths, budgets and
costs. A real tiny search on SQLite."""

from __future__ import annotations

import importlib
import json
import math
import sys

import pytest

from tests.conftest import count
from widthsearch.cli import main
from widthsearch.models.factory import create_model
from widthsearch.models.widthfile import load_width_file
from widthsearch.search import load_search_study, run_search
from widthsearch.search.settings import Ranges
from widthsearch.studyfile import StudyConfig
from widthsearch.verify import plan_from_width_files

SIZE = (3, 32, 32)


@pytest.mark.slow
def test_a_front_trial_round_trips_to_export_verify_and_create_model(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    config = StudyConfig(model="resnet18", input_size=SIZE, trials=8, sampler="random", seed=3)
    run_search(config, url)
    study = load_search_study("resnet18", url)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    trial = next((t for t in done if t.params["mode"] == "preconfig"), done[0])
    out = tmp_path / "w.json"
    assert (
        main(["front", "resnet18", "--storage", url, "--trial", str(trial.number), "-o", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"trial {trial.number} of study 'resnet18'" in printed and str(out) in printed

    wf = load_width_file(out)
    data = wf.data
    assert list(wf.widths) == trial.user_attrs["widths"]
    assert data["log_synexp_gain"] == pytest.approx(trial.values[0], abs=1e-9)
    assert (data["params"], data["macs"]) == (int(trial.values[1]), int(trial.values[2]))
    p = trial.params
    assert data["mode"] == p["mode"] and data["divisor"] == p["divisor"]
    assert data["min_width"] == p["min_width"]
    assert data["max_width"] == p.get("max_width", 1.0)
    budgets = data["budgets"]
    for key, base in (("params", data["base_params"]), ("macs", data["base_macs"])):
        ratio = p.get(f"{key}_ratio")
        assert budgets[key] == (None if ratio is None else math.floor(ratio * base))
        if budgets[key] is not None:
            assert data[key] <= budgets[key]  # the trial held its budgets, so the file does

    # create_model builds exactly what the file predicts
    model = create_model(out)
    assert count(model, SIZE) == (data["params"], data["macs"])
    # verify takes it as a candidate, at its widths
    plan = plan_from_width_files([out])
    picked = [c for c in plan.candidates if c.kind == "candidate"]
    assert [list(c.widths) for c in picked] == [list(wf.widths)]
    # export writes a timm entrypoint that builds the same model
    py = tmp_path / "trial_models.py"
    assert main(["export", str(out), "--py", str(py), "--name", "resnet18_trial_ws"]) == 0
    capsys.readouterr()
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("trial_models")
        import timm

        assert count(timm.create_model("resnet18_trial_ws"), SIZE) == (data["params"], data["macs"])
    finally:
        sys.path.remove(str(tmp_path))
    # --json prints the same result
    assert (
        main(["front", "resnet18", "--storage", url, "--trial", str(trial.number), "--json"]) == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert [g["width"] for g in info["groups"]] == list(wf.widths)


@pytest.mark.slow
def test_trials_without_widths_and_stray_options_are_one_line_and_write_nothing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    ranges = Ranges(params=(0.01, 0.01), macs=None, min_width=(0.9, 0.9), mode=("precrop",))
    config = StudyConfig(
        model="resnet18", input_size=SIZE, trials=1, sampler="random", seed=0, ranges=ranges
    )
    run_search(config, url)
    out = tmp_path / "w.json"
    base = ["front", "resnet18", "--storage", url]
    cases = [
        ([*base, "--trial", "0", "-o", str(out)], "trial 0 of study 'resnet18'"),
        ([*base, "--trial", "7", "-o", str(out)], "has no trial 7 (trials 0 to 0)"),
        ([*base, "-o", str(out)], "give --trial N"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not out.exists()
