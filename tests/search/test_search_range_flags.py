"""Item 7 of issue 27: ``search`` takes the ranges of ``[search.ranges]`` as options, and the
study records them as it records the file's keys."""

from __future__ import annotations

import json

import pytest

from widthsearch.cli import main
from widthsearch.search import open_storage
from widthsearch.search.attrs import StudyAttr

FILE = """model = "resnet18"
input_size = [3, 32, 32]
[search]
trials = {trials}
sampler = "random"
seed = 0
[search.ranges]
params = [0.5, 0.7]
macs = false
min_width = [0.25, 0.25]
max_width = [1.5, 1.5]
divisor = [8, 16]
mode = ["preconfig"]
"""
FLAGS = ["--params", "0.5,0.7", "--macs", "none", "--width", "0.25,1.5", "--divisor", "8,16"]
FLAGS += ["--mode", "preconfig", "--sampler", "random", "--seed", "0"]


@pytest.mark.slow
def test_range_flags_are_recorded_like_the_study_files_keys(tmp_path, capsys):
    import optuna

    url = f"sqlite:///{tmp_path}/s.db"
    base = ["search", "resnet18", "--input-size", "32", "--storage", url, "--json"]
    assert main([*base, *FLAGS, "--trials", "4"]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="resnet18", storage=open_storage(url, create=False))
    ranges = study.user_attrs[StudyAttr.RANGES]
    assert ranges["params"] == [0.5, 0.7] and ranges["macs"] is None
    assert ranges["min_width"] == [0.25, 0.25] and ranges["max_width"] == [1.5, 1.5]
    assert ranges["divisor"] == [8, 16] and ranges["mode"] == ["preconfig"]
    for t in study.trials:
        assert 0.5 <= t.params["params_ratio"] <= 0.7 and "macs_ratio" not in t.params
        assert t.params["mode"] == "preconfig" and t.params["min_width"] == 0.25
        assert t.params["max_width"] == 1.5 and t.params["divisor"] in (8, 16)
    # the same study from a file with the same keys resumes it: the settings are one and the same
    toml = tmp_path / "r.toml"
    toml.write_text(FILE.format(trials=5))
    assert main(["search", "--config", str(toml), "--storage", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new_trials"] == 1
    # other ranges on the command line are other settings: refused, nothing changed
    assert main([*base, *FLAGS[:-6], "--mode", "precrop", "--trials", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ranges.mode" in err
    assert len(study.trials) == 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--params", "0.9,0.5"], "--params must be LOW,HIGH"),
        (["--macs", "0,1"], "--macs must be LOW,HIGH"),
        (["--width", "abc"], "--width must be LOW,HIGH"),
        (["--width", "0.2,1", "--min-width", "0.1"], "not both"),
        (["--mode", "precrop,grow"], "--mode must be precrop, preconfig"),
        (["--params", "none", "--macs", "none"], "leave nothing to budget"),
    ],
)
def test_bad_range_flags_are_one_line_exit_2_and_create_no_storage(
    tmp_path, capsys, flags, message
):
    db = tmp_path / "s.db"
    assert main(["search", "resnet18", "--storage", f"sqlite:///{db}", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not db.exists()
