"""Search foundations (issue 5, in progress): study files, the per-trial objective, storage,
resuming and the Pareto front, on real Optuna studies in SQLite and journal files."""

from __future__ import annotations

import pytest

from widthsearch.search import StorageError, front, open_storage, open_study, run_search
from widthsearch.study import Ranges, StudyConfig, StudyConfigError, load_config, parse_config

CONFIG = StudyConfig(
    model="mobilenetv2_100", input_size=(3, 64, 64), trials=24, sampler="random", seed=0
)


def test_study_file_round_trip(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'model = "resnet18"\ninput_size = [3, 64, 64]\n'
        '[search]\ntrials = 5\nsampler = "nsga2"\n'
        "[search.ranges]\nparams = [0.5, 0.9]\nmacs = false\ndivisor = [8, 16]\n"
        'mode = ["precrop"]\n'
    )
    config = load_config(path)
    assert (config.model, config.trials, config.sampler) == ("resnet18", 5, "nsga2")
    assert config.ranges.params == (0.5, 0.9) and config.ranges.macs is None
    assert config.ranges.divisor == (8, 16) and config.ranges.mode == ("precrop",)


@pytest.mark.parametrize(
    "text,match",
    [
        ("model = [", "not valid TOML"),
        ("[search]\ntrials = 3", "'model' is missing"),
        ('model = "x"\n[search]\nsampler = "grid"', "unknown sampler 'grid'"),
        ('model = "x"\n[search.ranges]\nparams = [0.9, 0.5]', "ranges.params"),
        ('model = "x"\n[search.ranges]\nmode = ["sideways"]', "ranges.mode"),
        ('model = "x"\n[search.ranges]\nparams = false\nmacs = false', "both be false"),
        ('model = "x"\n[search.ranges]\nwidth = [1, 2]', "unknown range"),
    ],
)
def test_bad_study_files(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StudyConfigError, match=match):
        load_config(path)


def test_unknown_sampler_option():
    with pytest.raises(StudyConfigError, match="unknown sampler 'cma'"):
        parse_config({"model": "resnet18"}).with_options(sampler="cma")


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_search_records_trials_resumes_and_fronts(tmp_path, storage):
    url = f"sqlite:///{tmp_path}/s.db" if storage == "sqlite" else f"journal:{tmp_path}/s.log"
    first = run_search(CONFIG, url)
    assert first.trials == first.new_trials == 24
    again = run_search(CONFIG.with_options(trials=30), url)
    assert (again.trials, again.new_trials) == (30, 6)  # --trials counts the total

    study = open_study(CONFIG, open_storage(url), create=False)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and all(len(t.user_attrs["widths"]) > 0 for t in complete)
    for t in study.trials:
        assert t.state.name in ("COMPLETE", "PRUNED")
        if t.state.name == "PRUNED":
            assert t.user_attrs["infeasible"]
    pareto = front(study)
    numbers = {t.number for t in pareto}
    assert numbers == {s["number"] for s in again.front}
    for t in complete:  # nothing outside the front dominates a front member
        if t.number in numbers or "duplicate_of" in t.user_attrs:
            continue
        a = (-t.values[0], t.values[1], t.values[2])
        assert any(
            all(b <= x for b, x in zip((-f.values[0], f.values[1], f.values[2]), a, strict=True))
            for f in pareto
        )


def test_duplicates_are_marked_and_kept_out_of_the_front(tmp_path):
    # one mix for every trial (a budget at the base's own cost no longer binds: it is pruned)
    every_trial_the_same = Ranges(
        params=(0.5, 0.5), macs=None, min_width=(0.1, 0.1), mode=("precrop",)
    )
    config = StudyConfig(
        model="resnet18",
        input_size=(3, 64, 64),
        trials=12,
        sampler="random",
        seed=1,
        ranges=every_trial_the_same,
    )
    result = run_search(config, f"sqlite:///{tmp_path}/d.db")
    study = open_study(config, open_storage(f"sqlite:///{tmp_path}/d.db"), create=False)
    dups = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(dups) == 11 and {t.user_attrs["duplicate_of"] for t in dups} == {0}
    assert [s["number"] for s in result.front] == [0]


def test_study_for_another_model_is_refused_untouched(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    run_search(CONFIG.with_options(trials=3), url)
    other = StudyConfig(model="resnet18", input_size=(3, 64, 64), study_name=CONFIG.name)
    with pytest.raises(StorageError, match="holds mobilenetv2_100"):
        run_search(other, url)
    assert len(open_study(CONFIG, open_storage(url)).trials) == 3


def test_unreachable_storage_is_one_line():
    with pytest.raises(StorageError, match="cannot open storage") as err:
        open_storage("postgresql://nobody@127.0.0.1:1/none")
    assert "\n" not in str(err.value)


def test_two_workers_share_a_postgresql_study(postgres_url, capsys):
    """Two processes on one study in a real PostgreSQL: every trial once, none lost."""
    import itertools
    import json

    import optuna

    from widthsearch.cli import main

    args = [
        "search",
        "resnet18",
        "--input-size",
        "64",
        "--trials",
        "30",
        "--workers",
        "2",
        "--sampler",
        "random",
        "--seed",
        "0",
        "--storage",
        postgres_url,
        "--json",
    ]
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name="resnet18", storage=postgres_url)
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(30))
    assert len({t._trial_id for t in trials}) == 30
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all("widths" in t.user_attrs for t in trials if t.state.name == "COMPLETE")
    for t in sorted(trials, key=lambda t: t.datetime_start):
        print(t.number, t.datetime_start, t.datetime_complete)
    overlapping = any(  # the two workers really ran at the same time
        a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
        for a, b in itertools.combinations(trials, 2)
    )
    assert overlapping
    assert {t["number"] for t in info["front"]} == {t.number for t in front(study)}
    assert info["trials"] == 30 and info["new_trials"] == 30


def test_search_cli_bad_input_is_one_line_and_leaves_the_study(tmp_path, capsys):
    from widthsearch.cli import main

    db = f"sqlite:///{tmp_path}/c.db"
    base = ["search", "mobilenetv2_100", "--input-size", "64", "--storage", db]
    assert main([*base, "--trials", "3", "--sampler", "random", "--json"]) == 0
    capsys.readouterr()
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("model = 'resnet18'\n[search\n")
    cases = [
        ([*base, "--sampler", "cmaes"], "unknown sampler 'cmaes'"),
        (["search", "--config", str(bad_toml), "--storage", db], "is not valid TOML"),
        (
            [
                "search",
                "resnet18",
                "--input-size",
                "64",
                "--study",
                "mobilenetv2_100",
                "--storage",
                db,
            ],
            "holds mobilenetv2_100",
        ),
        (["search", "resnet18", "--storage", "postgresql://u@127.0.0.1:1/x"], "cannot open"),
        (["front", "nothing", "--storage", db], "no study 'nothing'"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    study = open_study(
        StudyConfig(model="mobilenetv2_100", input_size=(3, 64, 64)), open_storage(db), create=False
    )
    assert len(study.trials) == 3
