"""Search foundations (issue 5, in progress): study files, the per-trial objective, storage,
resuming and the Pareto front, on real Optuna studies in SQLite and journal files."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from widthsearch.search import StorageError, front, open_storage, open_study, run_search
from widthsearch.studyfile import Ranges, StudyConfig, StudyConfigError, load_config, parse_config

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
        ('model = "x"\n[search.ranges]\nwidth = [1, 2]', "unknown key 'search.ranges.width'"),
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["qmc", "random"])
def test_two_workers_share_a_postgresql_study(postgres_url, capsys, sampler):
    """Two processes on one study in a real PostgreSQL: every trial once, none lost, and (qmc)
    no mix taken twice."""
    import itertools

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
        sampler,
        "--seed",
        "0",
        "--study",
        sampler,
        "--storage",
        postgres_url,
        "--json",
    ]
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name=sampler, storage=postgres_url)
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
    if sampler == "qmc":
        assert len({tuple(sorted(t.params.items())) for t in trials}) == 30


@pytest.mark.slow
def test_two_workers_share_a_journal_study_without_taking_a_point_twice(tmp_path):
    """qmc on a journal file: trial numbers are given out by the journal's order, so two
    processes take different Sobol points and every trial is whole."""
    config = StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=16, seed=0)
    url = f"journal:{tmp_path}/s.log"
    result = run_search(config, url, workers=2)
    assert (result.trials, result.new_trials) == (16, 16)
    study = open_study(config, open_storage(url), create=False)
    assert sorted(t.number for t in study.trials) == list(range(16))
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 16


def _claim_all(url: str, out) -> None:
    """Claim waiting trials of study 's' the way Optuna's ``ask`` does, until none is left."""
    from optuna.trial import TrialState

    storage = open_storage(url)
    study_id = storage.get_study_id_from_name("s")
    got = []
    while waiting := storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        for t in waiting:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                got.append(t._trial_id)
                break
    out.put(got)


@pytest.mark.slow
def test_processes_claiming_queued_trials_on_sqlite_never_claim_one_twice(tmp_path):
    """Verification workers claim queued runs by Optuna's conditional WAITING -> RUNNING
    update. Under pysqlite's own transactions its read ran before any lock, and 4 processes
    claiming 300 trials made 345 claims; open_storage's IMMEDIATE transactions make each
    claim whole, so every trial is claimed exactly once."""
    import multiprocessing

    import optuna

    url = f"sqlite:///{tmp_path}/q.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    for i in range(300):
        study.enqueue_trial({"x": i})
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_claim_all, args=(url, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    claims = [i for _ in workers for i in queue.get(timeout=120)]
    for w in workers:
        w.join()
    assert sorted(claims) == sorted(t._trial_id for t in study.trials)
    assert len(claims) == 300


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


# ------------------------------------------------------------------------ issue 11 hardening
def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess (stdout/stderr captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "widthsearch.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def one_line(err: str) -> str:
    """The one message line of ``err``, less the search's progress lines (printed every few
    seconds when stderr is not a terminal)."""
    progress = re.compile(r"^search: [0-9,]+/[0-9,]+ trials finished")
    lines = [line for line in err.strip().splitlines() if not progress.match(line)]
    assert len(lines) == 1, err
    return lines[0]


def counts(url: str, name: str) -> dict[str, int]:
    import collections

    import optuna

    study = optuna.load_study(study_name=name, storage=open_storage(url, create=False))
    return dict(collections.Counter(t.state.name for t in study.trials))


RANGES = """model = "resnet18"
input_size = [3, 32, 32]
[search]
trials = {trials}
[search.ranges]
params = [{low}, 0.9]
macs = false
mode = ["precrop"]
"""


def test_rerun_with_other_settings_is_one_line_and_leaves_the_study(tmp_path, capsys):
    """Other [search.ranges], sampler, classes: refused before any trial, nothing written."""
    import optuna

    from widthsearch.cli import main

    toml = tmp_path / "s.toml"
    toml.write_text(RANGES.format(trials=4, low=0.3))
    db = f"sqlite:///{tmp_path}/s.db"
    assert main(["search", "--config", str(toml), "--storage", db, "--json"]) == 0
    capsys.readouterr()
    study = open_study(load_config(toml), open_storage(db), create=False)
    before = [(t.number, t.state.name, t.params, t.user_attrs) for t in study.trials]
    attrs = dict(study.user_attrs)

    toml.write_text(RANGES.format(trials=8, low=0.5))
    cases = [
        (["--config", str(toml)], "ranges.params [0.3, 0.9] (not [0.5, 0.9])"),
        (["resnet18", "--input-size", "32", "--sampler", "tpe"], "sampler qmc (not tpe)"),
        (["resnet18", "--input-size", "32", "--num-classes", "10"], "timm_kwargs {} (not"),
        (["resnet18", "--input-size", "32", "--seed", str(attrs["seed"] + 1)], "seed "),
    ]
    for args, diff in cases:
        assert main(["search", *args, "--storage", db]) == 2
        err = one_line(capsys.readouterr().err)
        assert diff in err and "--study" in err and "left as it is" in err, err
        assert f"in {db}" in err
    study = optuna.load_study(study_name="resnet18", storage=db)
    assert [(t.number, t.state.name, t.params, t.user_attrs) for t in study.trials] == before
    assert dict(study.user_attrs) == attrs
    # the same settings go on; a new --study name takes the new ranges
    assert main(["search", "--config", str(toml), "--storage", db, "--study", "b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == 8


def _journal_study(tmp_path) -> tuple[str, bytes]:
    path = tmp_path / "s.log"
    config = StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=6, seed=0)
    run_search(config, f"journal:{path}")
    return str(path), path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_journal_is_refused_and_left_byte_identical(tmp_path, capsys, damage):
    from widthsearch.cli import main

    path, good = _journal_study(tmp_path)
    lines = good.splitlines(keepends=True)
    if damage == "truncated":  # cut mid-line, as a full disk or a killed copy leaves it
        bad = good[: len(good) - len(lines[-1]) // 2]
    else:  # a line in the middle overwritten
        bad = b"".join(lines[:3] + [b"\x00\x00not json\n"] + lines[4:])
    with open(path, "wb") as f:
        f.write(bad)
    for args in (
        ["front", "resnet18"],
        ["search", "resnet18", "--input-size", "32", "--trials", "9"],
        ["report", "resnet18", "-o", str(tmp_path / "r")],
    ):
        assert main([*args, "--storage", f"journal:{path}"]) == 2
        err = one_line(capsys.readouterr().err)
        assert f"journal {path} is damaged" in err and "left it as it is" in err, err
        assert Path(path).read_bytes() == bad
    assert not (tmp_path / "r").exists()


def test_reading_commands_create_no_storage(tmp_path, capsys):
    """front, report and verify read: a missing path is one line, and no file appears."""
    from widthsearch.cli import main

    other = tmp_path / "other.db"  # a SQLite database that is not an Optuna storage
    with sqlite3.connect(other) as con:
        con.execute("create table t (x)")
    other_bytes = other.read_bytes()
    cases = [
        (f"sqlite:///{tmp_path}/none.db", f"no storage at sqlite:///{tmp_path}/none.db"),
        (str(tmp_path / "none2.db"), f"no storage at sqlite:///{tmp_path}/none2.db"),
        (f"journal:{tmp_path}/none.log", f"no journal file at {tmp_path}/none.log"),
        (f"sqlite:///{other}", "it holds no Optuna tables"),
    ]
    for url, message in cases:
        for args in (
            ["front", "x"],
            ["report", "x", "-o", str(tmp_path / "r")],
            ["verify", "x", "--epochs", "1"],
        ):
            assert main([*args, "--storage", url]) == 2
            assert message in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]
    assert other.read_bytes() == other_bytes


def test_no_study_names_the_storage_and_its_studies(tmp_path, capsys):
    from widthsearch.cli import main

    db = f"sqlite:///{tmp_path}/s.db"
    run_search(CONFIG.with_options(trials=2), db)
    for args in (["front", "nothing"], ["report", "nothing", "-o", str(tmp_path / "r")]):
        assert main([*args, "--storage", db]) == 2
        err = one_line(capsys.readouterr().err)
        assert f"no study 'nothing' in {db} (it holds mobilenetv2_100)" in err, err


def test_report_onto_an_existing_file_is_one_line_and_leaves_it(tmp_path, capsys):
    from widthsearch.cli import main

    db = f"sqlite:///{tmp_path}/s.db"
    run_search(CONFIG.with_options(trials=2), db)
    target = tmp_path / "index.html"
    target.write_text("mine")
    for out in (target, target / "sub"):
        assert main(["report", "mobilenetv2_100", "--storage", db, "-o", str(out)]) == 2
        assert "is a file, not a folder" in one_line(capsys.readouterr().err)
    assert target.read_text() == "mine"


@pytest.mark.slow
def test_front_into_a_closed_pipe_ends_quietly(tmp_path):
    """`widthsearch front ... | head -1`: the reader goes away, the command ends without a
    traceback and with status 0 (the pipe is closed before the command writes, so the write
    must fail)."""
    db = f"sqlite:///{tmp_path}/s.db"
    run_search(CONFIG.with_options(trials=3), db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "widthsearch.cli", "front", "mobilenetv2_100", "--storage", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0  # the reader has what it wanted: not a failure
    assert err == ""


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["qmc", "tpe"])
def test_ctrl_c_stops_after_the_running_trial_and_keeps_every_trial_whole(tmp_path, sampler):
    """A real SIGINT mid-search: one line, exit 130, and the storage holds only finished
    trials (no FAIL, no RUNNING), as many as the line says."""
    db = tmp_path / "s.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "widthsearch.cli",
            "search",
            "resnet18",
            "--input-size",
            "32",
            "--trials",
            "100000",
            "--sampler",
            sampler,
            "--storage",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    done = 0
    while done < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            with (
                contextlib.suppress(sqlite3.Error),
                sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con,
            ):
                done = con.execute(
                    "select count(*) from trials where state = 'COMPLETE'"
                ).fetchone()[0]
    assert done >= 5, proc.stderr.read() if proc.poll() is not None else "too slow"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = one_line(err)
    assert line.startswith("widthsearch: interrupted: stopped after"), line
    assert "Traceback" not in err and out == ""
    states = counts(f"sqlite:///{db}", "resnet18")
    assert set(states) <= {"COMPLETE", "PRUNED"}, states
    assert f"holds {sum(states.values())} finished trials" in line


@pytest.mark.slow
def test_qmc_is_the_default_trial_n_takes_sobol_point_n_and_a_resume_continues(tmp_path):
    """Stored sampler and seed; a study run in two goes holds exactly the trials of one run
    of the same length; no two trials share a mix."""
    from scipy.stats import qmc

    from widthsearch.search import SobolMixes

    config = StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=10, seed=7)
    twice, once = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    run_search(config, twice)
    run_search(config.with_options(trials=20), twice)
    run_search(config.with_options(trials=20), once)
    studies = [open_study(config, open_storage(url), create=False) for url in (twice, once)]
    assert [s.user_attrs["sampler"] for s in studies] == ["qmc", "qmc"]
    assert [s.user_attrs["seed"] for s in studies] == [7, 7]
    a, b = ([(t.number, t.params, t.values) for t in s.trials] for s in studies)
    assert a == b and [n for n, _, _ in a] == list(range(20))
    mixes = {tuple(sorted(p.items())) for _, p, _ in a}
    assert len(mixes) == 20
    # the params are the scrambled Sobol points themselves: budgets are the first coordinates
    # coordinates: params, macs, mode, min_width, max_width (the divisor is fixed at 8)
    points = qmc.Sobol(5, scramble=True, seed=7).random_base2(5)[:20]
    r = config.ranges
    for (_, params, _), u in zip(a, points, strict=True):
        assert params["params_ratio"] == pytest.approx(
            r.params[0] + u[0] * (r.params[1] - r.params[0])
        )
        assert params["macs_ratio"] == pytest.approx(r.macs[0] + u[1] * (r.macs[1] - r.macs[0]))
        assert params["mode"] == r.mode[int(u[2] * 2)]
    assert SobolMixes(r, 7).params(13) == a[13][1]


@pytest.mark.slow
def test_settings_without_a_seed_record_the_drawn_one(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    config = StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=3)
    run_search(config, url)
    seed = open_study(config, open_storage(url), create=False).user_attrs["seed"]
    assert isinstance(seed, int)
    run_search(config.with_options(trials=5), url)  # no seed given: the study's own
    run_search(config.with_options(trials=6, seed=seed), url)  # the same, given: fine
    with pytest.raises(StorageError, match=f"seed {seed} \\(not {seed + 1}\\)"):
        run_search(config.with_options(trials=7, seed=seed + 1), url)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_optuna_samplers_still_run_and_resume(tmp_path, sampler):
    url = f"sqlite:///{tmp_path}/s.db"
    config = StudyConfig(
        model="resnet18", input_size=(3, 32, 32), trials=4, sampler=sampler, seed=0
    )
    assert run_search(config, url).trials == 4
    again = run_search(StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=6), url)
    assert (again.trials, again.new_trials) == (6, 2)  # no --sampler: the study's own
    study = open_study(config, open_storage(url), create=False)
    assert study.user_attrs["sampler"] == sampler


def test_pareto_mask_matches_the_definition():
    import numpy as np

    from widthsearch.search import pareto_mask

    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(300, 3)).astype(float)  # many ties
    mask = pareto_mask(points)
    for i, p in enumerate(points):
        dominated = any(np.all(q <= p) and np.any(q < p) for q in points)
        assert mask[i] == (not dominated)


@pytest.mark.slow
def test_thinned_front_keeps_a_close_point_for_every_one_left_out(tmp_path):
    from widthsearch.search import choose_eps, load_front, thin_front

    url = f"sqlite:///{tmp_path}/s.db"
    run_search(StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=80, seed=0), url)
    points = load_front("resnet18", url, eps=0)["front"]
    assert len(points) > 20
    for eps in (0.05, 0.2, 0.5):
        shown = thin_front(points, eps)
        assert 0 < len(shown) < len(points)
        numbers = {t["number"] for t in shown}
        for t in points:
            assert any(
                s["params"] <= (1 + eps) * t["params"]
                and s["macs"] <= (1 + eps) * t["macs"]
                and s["log_synexp"] >= t["log_synexp"]
                for s in shown
            ), (eps, t["number"])
        for s in shown:  # and none of the shown ones is there for nothing
            assert not any(
                o["params"] <= s["params"]
                and o["macs"] <= s["macs"]
                and o["log_synexp"] >= s["log_synexp"]
                for o in shown
                if o is not s
            )
        assert numbers <= {t["number"] for t in points}
    eps = choose_eps(points, rows=10)
    assert len(thin_front(points, eps)) <= 10
    info = load_front("resnet18", url, rows=10)
    assert info["eps"] == eps and len(info["shown"]) <= 10 and info["front"] == points


@pytest.mark.slow
def test_front_command_shows_the_thinned_front_and_json_the_whole(tmp_path, capsys):
    from widthsearch.cli import main

    url = f"sqlite:///{tmp_path}/s.db"
    run_search(StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=60, seed=0), url)
    assert main(["front", "resnet18", "--storage", url, "--rows", "8"]) == 0
    text = capsys.readouterr().out
    rows = text.split("-----")[-1].strip().splitlines()[1:]
    assert 0 < len(rows) <= 8 and "shown: every other one has a shown point within" in text
    assert main(["front", "resnet18", "--storage", url, "--all"]) == 0
    every = capsys.readouterr().out
    assert main(["front", "resnet18", "--storage", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(every.split("-----")[-1].strip().splitlines()) - 1 == len(info["front"])
    assert len(info["front"]) > len(rows)


def test_search_for_your_own_head_and_input_channels(tmp_path, capsys):
    """--num-classes and --in-chans go to timm, are recorded, and hold on a re-run."""
    from widthsearch import WidthSpace
    from widthsearch.cli import main

    url = f"sqlite:///{tmp_path}/s.db"
    args = ["search", "resnet18", "--input-size", "32", "--storage", url, "--json"]
    own = ["--num-classes", "10", "--in-chans", "1"]
    assert main([*args, "--trials", "3", *own]) == 0
    info = json.loads(capsys.readouterr().out)
    space = WidthSpace.from_timm("resnet18", input_size=(1, 32, 32), num_classes=10, in_chans=1)
    assert (info["base_params"], info["base_macs"]) == (space.params(), space.macs())
    assert info["timm_kwargs"] == {"num_classes": 10, "in_chans": 1}
    assert info["input_size"] == [1, 32, 32]
    assert main([*args, "--trials", "4", *own]) == 0
    assert json.loads(capsys.readouterr().out)["new_trials"] == 1
    assert main([*args, "--trials", "5", "--num-classes", "100", "--in-chans", "1"]) == 2
    assert "timm_kwargs {num_classes = 10, in_chans = 1} (not" in one_line(capsys.readouterr().err)


def test_a_mix_the_solver_fails_on_is_pruned_and_the_search_goes_on(tmp_path):
    """Clarabel fails on this efficientnet_b0 mix today (a valid one: params 1.16x, MACs
    0.57x, widths 0.089-2.157x). One such mix among thousands must not end a search: the
    trial is pruned with the solver's message, and the others run."""
    config = StudyConfig(
        model="efficientnet_b0",
        trials=3,
        seed=0,
        ranges=Ranges(
            params=(1.161936378547229, 1.161936378547229),
            macs=(0.5685846061296176, 0.5685846061296176),
            min_width=(0.0891774897281876, 0.0891774897281876),
            max_width=(2.1569929552632234, 2.1569929552632234),
            mode=("preconfig",),
        ),
    )
    url = f"sqlite:///{tmp_path}/s.db"
    result = run_search(config, url)
    assert result.trials == 3
    study = open_study(config, open_storage(url), create=False)
    for t in study.trials:
        assert t.state.name in ("COMPLETE", "PRUNED")
        if t.state.name == "PRUNED":
            assert "geometric program failed" in t.user_attrs["solver_failed"]


def test_a_study_killed_before_its_settings_is_taken_over_but_a_foreign_one_is_not(tmp_path):
    """An empty study without settings (creation killed half-way) is completed by the next
    search; a study with trials that search did not make is refused and left alone."""
    import optuna

    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="resnet18", storage=url, directions=["maximize"] * 3)
    config = StudyConfig(model="resnet18", input_size=(3, 32, 32), trials=2, seed=0)
    assert run_search(config, url).trials == 2
    foreign = optuna.create_study(study_name="other", storage=url)
    foreign.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(StorageError, match="was not made by widthsearch search"):
        run_search(config.with_options(study_name="other"), url)
    assert len(optuna.load_study(study_name="other", storage=url).trials) == 1
