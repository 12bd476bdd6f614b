"""Searching over latency and memory: ranges in study files and on the command line, latency
as a fourth objective, budgets held by every trial, the front and the report show it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY, TINY_SIZE
from widthsearch.cli import main
from widthsearch.search import StorageError, front, open_storage, open_study, run_search
from widthsearch.studyfile import Hardware, StudyConfig, StudyConfigError, load_config


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory, fixed_profile):
    path = tmp_path_factory.mktemp("profile") / "p.json"
    fixed_profile.save(path)
    return str(path)


def test_study_file_latency_and_memory(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        f'model = "{TINY}"\ninput_size = [3, 64, 64]\n'
        '[search]\nprofile = "p.json"\nthreads = 1\nbatch_size = 2\n'
        "[search.ranges]\nlatency = [0.8, 1.0]\nmemory = [0.9, 1.1]\n"
    )
    config = load_config(path)
    assert config.ranges.latency == (0.8, 1.0) and config.ranges.memory == (0.9, 1.1)
    assert config.hardware == Hardware(profile="p.json", threads=1, batch_size=2)
    assert config.axes == ("log_synexp", "params", "macs", "latency_ms")
    assert config.ranges.to_dict()["latency"] == [0.8, 1.0]
    plain = load_config_text(tmp_path, f'model = "{TINY}"\n')
    assert plain.axes == ("log_synexp", "params", "macs")
    assert load_config_text(tmp_path, f'model = "{TINY}"\n[search]\nlatency = true\n').axes[-1] == (
        "latency_ms"
    )


def load_config_text(tmp_path, text):
    path = tmp_path / "t.toml"
    path.write_text(text)
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[search.ranges]\nlatency = [1.0, 0.5]", "ranges.latency"),
        ("[search.ranges]\nmemory = 3", "ranges.memory"),
        ("[search]\nlatency = 1", "search.latency must be true or false"),
        ('[search]\ndevice = "tpu"', "search.device must be one of cpu, cuda"),
        ("[search]\nthreads = 0", "search.threads must be a positive integer"),
    ],
)
def test_bad_latency_settings_in_study_files(tmp_path, text, match):
    with pytest.raises(StudyConfigError, match=match):
        load_config_text(tmp_path, f'model = "{TINY}"\n{text}\n')


def test_search_with_latency_objective_and_budgets(tmp_path, profile_path, tiny_space):
    from widthsearch.hardware.memory import activation_memory

    config = StudyConfig(
        model=TINY,
        input_size=TINY_SIZE,
        trials=12,
        sampler="random",
        seed=0,
        latency=True,
        hardware=Hardware(profile=profile_path, threads=1),
    )
    config = config.with_options(ranges=_ranges(latency=(0.85, 1.0), memory=(0.8, 1.0)))
    url = f"sqlite:///{tmp_path}/l.db"
    result = run_search(config, url)
    study = open_study(config, open_storage(url), create=False)
    assert len(study.directions) == 4
    assert study.user_attrs["objectives"][-1] == "latency_ms"
    from widthsearch.hardware import Profile

    model = Profile.load(profile_path).latency_model(tiny_space)
    memory = activation_memory(tiny_space)
    base_ms = model(tiny_space.base_widths)
    assert study.user_attrs["base_latency_ms"] == pytest.approx(base_ms)
    complete = [t for t in study.trials if t.values]
    assert complete
    for t in complete:  # every trial holds its own latency and memory budgets
        widths = t.user_attrs["widths"]
        assert t.values[3] == pytest.approx(model(widths))
        assert t.values[3] <= t.params["latency_ratio"] * base_ms * (1 + 1e-12)
        assert t.user_attrs["memory_bytes"] == memory(widths)
        assert memory(widths) <= t.params["memory_ratio"] * memory(tiny_space.base_widths)
    info = result.report
    assert info["objectives"][-1] == "latency_ms" and info["base_latency_ms"] > 0
    assert all(t["latency_ratio"] is not None for t in info["front"])
    assert {t.number for t in front(study)} == {t["number"] for t in info["front"]}

    # the same study without the latency objective is refused, untouched
    plain = StudyConfig(model=TINY, input_size=TINY_SIZE, trials=14, sampler="random")
    stored = (
        r"objectives \[log_synexp, params, macs, latency_ms\] \(not \[log_synexp, params, macs\]\)"
    )
    with pytest.raises(StorageError, match=stored):
        run_search(plain, url)
    assert len(open_study(config, open_storage(url), create=False).trials) == 12


def _ranges(**changes):
    from dataclasses import replace

    from widthsearch.studyfile import Ranges

    return replace(Ranges(), **changes)


@pytest.mark.slow
def test_search_cli_latency_front_and_errors(tmp_path, capsys, profile_path):
    db = f"sqlite:///{tmp_path}/c.db"
    base = ["search", TINY, "--input-size", "64", "--storage", db, "--sampler", "random"]
    base += ["--trials", "6", "--seed", "0"]
    assert main([*base, "--profile", profile_path, "--latency", "0.9,1.0"]) == 0
    out = capsys.readouterr().out
    assert "min latency" in out and "B_lat" in out and "predicted latency" in out
    assert main(["front", TINY, "--storage", db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert all(0 < t["latency_ratio"] <= 1.0 + 1e-9 for t in info["front"])
    for extra, message in (
        (["--latency", "1.0,0.5"], "--latency must be LOW,HIGH"),
        (["--memory", "x"], "--memory must be LOW,HIGH"),
        (["--profile", profile_path, "--threads", "2"], "another device or setting"),
    ):
        assert main([*base, "--study", "other", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    storage = open_storage(db)
    assert [s.study_name for s in storage.get_all_studies()] == [TINY]  # nothing else written

    # verify shows the predicted latency next to the measured images/s, the report plots it
    verify = ["verify", TINY, "--storage", db, "--top", "1", "--epochs", "1", "--seeds", "0"]
    verify += ["--input-size", "3,32,32", "--out", str(tmp_path / "v.csv")]
    assert main(verify) == 0
    text = capsys.readouterr().out
    assert "pred ms" in text and "img/s" in text
    assert main([*verify, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    base = next(r for r in results if r["kind"] == "base")
    assert base["predicted_latency_ms"] == pytest.approx(info["base_latency_ms"])
    assert all(r["predicted_latency_ms"] > 0 for r in results)
    assert main(["report", TINY, "--storage", db, "-o", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "latency ×base" in page and "min predicted latency" in page
    assert "latency model" in page and "fitted to 8 width vectors" in page
    assert "latency_ratio" in (tmp_path / "r" / "front.csv").read_text().splitlines()[0]
