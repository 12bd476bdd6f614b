"""The verification study: runs as trials, successive halving, and many workers on one queue."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState

from widthsearch import WidthSpace
from widthsearch.cli import main
from widthsearch.cli.verify import format_verify
from widthsearch.report.page import write_report
from widthsearch.storage import open_storage
from widthsearch.train.data import load_dataset
from widthsearch.verify import estimate, latency
from widthsearch.verify.plan import make_candidate, with_controls
from widthsearch.verify.queue import QueueError, enqueue, finished, make_pruner, run_order
from widthsearch.verify.run import run_verify
from widthsearch.verify.settings import Execution, VerifySettings

TINY = (3, 16, 16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def space():
    return WidthSpace.from_timm("resnet18", input_size=TINY)


@pytest.fixture
def one_thread():
    """One torch thread: CPU results are bit-equal only at one thread count, and a shared
    2-core machine runs one thread fastest."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _scaled(space, factor: float, first: float | None = None) -> list[int]:
    """Free widths times ``factor`` (the first stage's times ``first``), multiples of 8."""
    out = []
    for i, (g, w) in enumerate(zip(space.groups, space.base_widths, strict=True)):
        f = first if first is not None and i < 3 else factor
        out.append(w if g.fixed else max(8, int(w * f) // 8 * 8))
    return out


def _rung0(trials: list[optuna.trial.FrozenTrial]) -> dict[int, float]:
    return {t.number: t.system_attrs["completed_rung_0"] for t in trials}


@pytest.mark.slow
def test_successive_halving_prunes_weak_candidates_while_base_and_control_finish(
    tmp_path, capsys, digits, space, one_thread, monkeypatch
):
    """The first candidate is narrow, so the uniform control (at its MACs) is narrow and weak
    too, but protected; a tiny candidate is stopped at the first rung. Every decision follows
    successive halving's rule over the runs that reached the rung before (one worker: the
    queue's order), and the pruned runs are reported, not judged."""
    # keep latency timings whatever their spread (a busy machine's would be timed again)
    monkeypatch.setattr(latency, "NOISY_SPREAD", math.inf)
    monkeypatch.setattr(latency, "BUSY_CORES", math.inf)
    narrow = make_candidate(space, "narrow", "candidate", _scaled(space, 0.03, first=0.5), 1)
    tiny = make_candidate(space, "tiny", "candidate", _scaled(space, 0.03), 2)
    plan = with_controls(space, [narrow, tiny], 8, "test")
    settings = VerifySettings(
        epochs=3,
        batch_size=32,
        train_subset=384,
        augment="none",
        head="timm",
        seeds=(0,),
        input_size=TINY,
    )
    url = f"journal:{tmp_path / 'v.log'}"
    out = tmp_path / "r.csv"

    def verify(**kw):
        execution = Execution(device="cpu", pruner="sha", storage_url=url, out=out, **kw)
        return run_verify(plan, digits, settings, execution)

    report = verify()
    info = report.to_dict()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "v.log"))
    )
    study = optuna.load_study(study_name=report.verification_study, storage=storage)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    kinds = [t.user_attrs["kind"] for t in trials]
    assert kinds == ["base", "control", "candidate", "candidate"]  # the queue's order
    by_name = {t.user_attrs["candidate"]: t for t in trials}
    for t in trials[:2]:  # the references train to the end, the weak control included
        assert t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2, 3]
    control = by_name[next(r["candidate"] for r in info["results"] if r["kind"] == "control")]
    assert control.value < by_name["base"].value  # tiny: weak, and not pruned
    # successive halving: at rung 0 (epoch 1) a run goes on only in the top third so far
    rung = _rung0(trials)
    for t in trials[2:]:
        before = [rung[u.number] for u in trials if u.number < t.number] + [rung[t.number]]
        keep = sorted(before, reverse=True)[max(0, len(before) // 3 - 1)]
        assert (t.state == TrialState.PRUNED) == (rung[t.number] < keep), (t.number, before)
    assert by_name["tiny"].state == TrialState.PRUNED
    assert by_name["tiny"].intermediate_values == {1: rung[by_name["tiny"].number]}
    # reported as pruned at epoch 1 with that accuracy, and left out of the verdicts
    res = {r["candidate"]: r for r in info["results"]}
    assert res["tiny"]["pruned"] == [
        {
            "seed": 0,
            "epoch": 1,
            "top1": by_name["tiny"].intermediate_values[1],
            "loss": pytest.approx(res["tiny"]["pruned"][0]["loss"]),
        }
    ]
    assert res["tiny"]["n"] == 0 and res["tiny"]["seeds"] == [] and res["tiny"]["vs_base"]["n"] == 0
    assert any(
        v.startswith("tiny (") and "measured latency) pruned (seed 0 at epoch 1, top-1 " in v
        for v in info["verdicts"]
    )
    text = format_verify(info | {"trained": report.trained, "skipped": 0, "out": str(out)})
    assert "pruner: successive halving" in text and "s0@1: " in text and "pruned" in text
    rows = {r["candidate"]: r for r in csv.DictReader(out.open())}
    assert rows["tiny"]["state"] == "pruned" and rows["tiny"]["pruned_at_epoch"] == "1"
    assert rows["tiny"]["epochs"] == "1" and rows["tiny"]["verdict_vs_base"] == ""
    assert rows["base"]["state"] == "complete" and rows["base"]["epochs"] == "3"
    assert float(rows["tiny"]["top1"]) == by_name["tiny"].intermediate_values[1]

    # reproducible: the same runs, pruned at the same epochs, with the same numbers
    again = run_verify(plan, digits, settings, Execution(device="cpu", pruner="sha")).to_dict()
    assert [(r["candidate"], r["top1_seeds"], r["pruned"]) for r in again["results"]] == [
        (r["candidate"], r["top1_seeds"], r["pruned"]) for r in info["results"]
    ]

    # a second coordinator enqueues nothing; a duplicate claim is skipped, never trained
    assert enqueue(study, run_order(plan.candidates, (0,)), report.recipe_key) == 0
    study.enqueue_trial({"seed": 0}, user_attrs=dict(by_name["base"].user_attrs) | {"x": 1})
    rerun = verify()
    assert rerun.trained == 0 and rerun.skipped == 4
    dup = study.get_trials()[-1]
    assert dup.state == TrialState.FAIL and dup.user_attrs["skipped"] == (
        f"duplicate of trial {by_name['base'].number}"
    )
    assert set(finished(study)) == {t.user_attrs["run"] for t in trials}
    assert rerun.to_dict()["results"] == info["results"]
    # another pruner for the same verification is refused in one line
    with pytest.raises(QueueError, match="prunes with sha; give --pruner sha"):
        run_verify(plan, digits, settings, Execution(pruner="median", storage_url=url))


def test_pruners_by_name():
    assert isinstance(make_pruner("sha", 10), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("hyperband", 10), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("median", 10), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("none", 10), optuna.pruners.NopPruner)


def _half_params(path, space):
    from widthsearch.models.widthfile import save_width_file
    from widthsearch.solve.reconfigure import reconfigure

    save_width_file(path, reconfigure(space, params=space.params() // 2, baselines=()), space)
    return path


@pytest.fixture
def width_file(tmp_path, space):
    return _half_params(tmp_path / "w.json", space)


@pytest.fixture
def tiny_file(tmp_path):
    """timm's ``test_resnet`` (0.37M params with 10 classes) at half its params: every run of
    the multi-worker test (candidate, base, control) takes about a second."""
    return _half_params(tmp_path / "t.json", WidthSpace.from_timm("test_resnet", input_size=TINY))


def test_several_workers_without_a_storage_are_refused(tmp_path, capsys, width_file, monkeypatch):
    """Workers share the runs through a storage: a width file verified in memory has none."""
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert main(["verify", str(width_file), "--workers", "2", "--epochs", "1", "--seeds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("widthsearch: error:") and "\n" not in err
    assert "give --storage FILE.db or journal:FILE.log" in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def _verify_args(width_file, out) -> list[str]:
    return [
        "verify",
        str(width_file),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--train-subset",
        "160",
        "--seeds",
        "0,1",
        "--pruner",
        "none",
        "--out",
        str(out),
        "--json",
    ]


@pytest.mark.slow
def test_two_workers_on_postgresql_one_killed_every_run_ends_once_as_one_worker_would(
    tmp_path, capsys, postgres_url, tiny_file, one_thread
):
    """Two ``verify`` processes (two machines) share one verification in PostgreSQL; the
    first is killed while a run it claimed has reported an epoch. Its heartbeat stops, the
    other worker fails that trial after the grace period and retries it from the epoch
    checkpoint. Every run ends exactly once, with the numbers a one-worker run gets (one torch
    thread in every process: CPU sums in another order differ in the last bits)."""
    ref_out = tmp_path / "ref.csv"
    assert main(_verify_args(tiny_file, ref_out)) == 0  # one worker, in memory
    reference = json.loads(capsys.readouterr().out)
    out = tmp_path / "shared.csv"
    args = [*_verify_args(tiny_file, out), "--storage", postgres_url, "--heartbeat", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "widthsearch.cli", *args]
    storage = optuna.storages.RDBStorage(postgres_url)

    def study():
        names = [s.study_name for s in storage.get_all_studies() if "/verify-" in s.study_name]
        return optuna.load_study(study_name=names[0], storage=storage) if names else None

    def wait_for(what, proc, timeout=120.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = what()
            if found:
                return found
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        raise AssertionError("timed out")

    def claimed(pid, reported):
        s = study()
        for t in s.get_trials(states=(TrialState.RUNNING,)) if s else []:
            mine = t.user_attrs.get("worker", "").endswith(f":{pid}")
            if mine and (t.intermediate_values or not reported):
                return t
        return None

    victim = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: claimed(victim.pid, reported=False), victim)
        survivor = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while True:  # freeze it with a reported epoch, check the run is still its own, kill
            trial = wait_for(lambda: claimed(victim.pid, reported=True), victim)
            victim.send_signal(signal.SIGSTOP)
            now = storage.get_trial(trial._trial_id)
            if now.state == TrialState.RUNNING:
                victim.kill()
                break
            victim.send_signal(signal.SIGCONT)
        victim.wait()
        stdout, stderr = survivor.communicate(timeout=180)
    finally:
        for p in (victim, locals().get("survivor")):
            if p is not None and p.poll() is None:
                p.kill()
    assert survivor.returncode == 0, stderr.decode()
    info = json.loads(stdout)
    trials = study().get_trials()
    runs = {t.user_attrs["run"] for t in trials}
    assert len(runs) == 6  # 3 models x 2 seeds, enqueued once: the survivor added none
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(t.user_attrs["run"] for t in ended) == sorted(runs)  # each exactly once
    killed = storage.get_trial(trial._trial_id)
    assert killed.state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == killed.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["run"] == trial.user_attrs["run"]
    assert retry.user_attrs["result"]["resumed_from"] >= 1  # from the victim's checkpoint
    assert sorted(retry.intermediate_values) == [1, 2, 3]
    # the same numbers as one worker
    got = [(r["candidate"], r["seeds"], r["top1_seeds"], r["loss"]) for r in info["results"]]
    want = [(r["candidate"], r["seeds"], r["top1_seeds"], r["loss"]) for r in reference["results"]]
    assert got == want
    assert info["skipped"] + info["trained"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_workers_spawned_by_one_command_share_a_storage_and_say_each_epoch(
    tmp_path, capfd, tiny_file, one_thread, monkeypatch, kind
):
    """``--workers 2`` on a journal or a SQLite file: two spawned processes claim the runs,
    each run ends exactly once, and every epoch of every run is announced on stderr with its
    worker (a bar cannot draw there, and a run's last line can be hours away). With one torch
    thread per worker (a 2-core machine: threads are the cores shared out), the numbers are a
    single worker's. A one-worker run to a log file gets the same lines, unprefixed."""
    ref_out = tmp_path / "ref.csv"
    ref_args = [a for a in _verify_args(tiny_file, ref_out) if a != "--json"]
    assert main(ref_args) == 0  # one worker, in memory; stderr is not a terminal here
    ref_err = capfd.readouterr().err
    ref_lines = [line for line in ref_err.splitlines() if ": epoch " in line]
    assert len(ref_lines) == 6 * 3  # 3 models x 2 seeds x 3 epochs
    assert all(not line.startswith("[worker") and "val top-1 " in line for line in ref_lines)
    ref = {(r["candidate"], r["seed"]): r["top1"] for r in csv.DictReader(ref_out.open())}

    out, log = tmp_path / "w.csv", tmp_path / ("w.log" if kind == "journal" else "w.db")
    url = f"journal:{log}" if kind == "journal" else f"sqlite:///{log}"
    args = [*_verify_args(tiny_file, out), "--storage", url, "--workers", "2"]
    monkeypatch.setattr(estimate, "LONG_RUN_SECONDS", 0.0)  # say it, however short
    monkeypatch.setattr(estimate, "PROBE_SHARE", 1.0)  # time each model up front
    assert main(args) == 0
    captured = capfd.readouterr()
    # the estimate, before the workers start: every model timed, the total shared out
    estimates = [line for line in captured.err.splitlines() if line.startswith("estimate: ")]
    assert len(estimates) == 1 and captured.err.index(estimates[0]) < captured.err.index("[worker")
    assert (
        "for 6 run(s) of 15 steps on cpu, shared by 2 workers (s per step, timed over 3 "
        in (estimates[0])
    )
    info = json.loads(captured.out)
    assert info["trained"] == 6 and info["skipped"] == 0
    study = optuna.load_study(study_name=info["verification_study"], storage=open_storage(url))
    ended = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(ended) == 6 and len({t.user_attrs["run"] for t in ended}) == 6  # each once
    lines = [line for line in captured.err.splitlines() if ": epoch " in line]
    assert len(lines) == 6 * 3 and all(line.startswith("[worker ") for line in lines)
    runs = {line.split("] ", 1)[1].split(": epoch ")[0] for line in lines}
    assert len(runs) == 6  # "<candidate> seed <s>": every run, each with its three epochs
    assert (
        sorted(line.split(": epoch ")[1].split(",")[0] for line in lines)
        == ["1/3"] * 6 + ["2/3"] * 6 + ["3/3"] * 6
    )
    got = {(r["candidate"], r["seed"]): r["top1"] for r in csv.DictReader(out.open())}
    if (os.cpu_count() or 1) // 2 == 1:  # one thread per worker, like the reference
        assert got == ref
    else:
        assert got.keys() == ref.keys()


@pytest.mark.slow
def test_results_an_older_version_kept_on_the_study_are_imported_not_retrained(
    tmp_path, capsys, one_thread
):
    """Before runs were trials, results sat in the search study's ``verify`` attribute; a
    verification of such a study takes them over as finished trials and trains nothing."""
    import shutil

    from widthsearch.storage import open_storage

    dbs = [f"journal:{tmp_path / name}" for name in ("a.log", "b.log")]
    args = ["search", "test_resnet", "--input-size", "16", "--trials", "8", "--seed", "0"]
    assert main([*args, "--storage", dbs[0], "--json"]) == 0
    shutil.copy(tmp_path / "a.log", tmp_path / "b.log")  # the same search study, twice
    verify = ["verify", "test_resnet", "--top", "1", "--epochs", "1", "--seeds", "0", "--json"]
    verify += ["--max-steps", "3"]
    assert main([*verify, "--storage", dbs[0], "--out", str(tmp_path / "a.csv")]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    old = optuna.load_study(study_name="test_resnet", storage=open_storage(dbs[1]))
    old.set_user_attr("verify", {rows[0]["recipe_key"]: {"rows": rows, "summary": None}})
    assert main([*verify, "--storage", dbs[1], "--out", str(tmp_path / "b.csv")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trained"] == 0 and info["skipped"] == len(rows) >= 2
    runs = optuna.load_study(study_name=info["verification_study"], storage=open_storage(dbs[1]))
    assert all(t.user_attrs["imported"] for t in runs.trials) and len(runs.trials) == len(rows)
    top1 = {r["candidate"]: float(r["top1"]) for r in rows}
    assert {r["candidate"]: r["top1"] for r in info["results"] if not r["same_as"]} == top1


@pytest.mark.slow
def test_a_run_another_verification_finished_with_the_same_recipe_is_taken_over(
    tmp_path, capsys, one_thread
):
    """Two studies of one model in one storage, verified with one recipe: the second trains its
    own candidate and control but takes the base's runs over from the first (same model,
    recipe, widths and seed: the same run), with their numbers, epoch values and this
    verification's labels, and says so. Another recipe takes nothing."""
    url = f"journal:{tmp_path / 's.log'}"
    for name, seed in (("a", "0"), ("b", "1")):
        args = ["search", "test_resnet", "--study", name, "--input-size", "16", "--trials", "8"]
        assert main([*args, "--seed", seed, "--storage", url, "--json"]) == 0
    capsys.readouterr()

    def verify(name, *extra):
        args = ["verify", name, "--top", "1", "--epochs", "2", "--seeds", "0,1", "--json"]
        out = str(tmp_path / f"{name}{len(extra)}.csv")
        assert main([*args, "--max-steps", "4", "--storage", url, "--out", out, *extra]) == 0
        captured = capsys.readouterr()
        return json.loads(captured.out), captured.err

    a, a_err = verify("a")
    b, b_err = verify("b")
    by_kind = lambda info: {r["kind"]: r for r in info["results"]}  # noqa: E731
    assert by_kind(a)["candidate"]["widths"] != by_kind(b)["candidate"]["widths"]
    assert "taken over" not in a_err
    assert "note: 2 run(s) taken over, not trained again: finished with the same recipe, " in b_err
    assert f"'{a['verification_study']}' (2)" in b_err
    assert b["skipped"] == 2 and b["trained"] == a["trained"] - 2 == 4  # its candidate, control
    assert by_kind(b)["base"]["top1_seeds"] == by_kind(a)["base"]["top1_seeds"]
    assert by_kind(b)["base"]["shared"] == 2 and by_kind(a)["base"]["shared"] == 0
    assert by_kind(b)["base"]["shared_from"] == [a["verification_study"]]
    assert by_kind(b)["candidate"]["shared"] == by_kind(b)["control"]["shared"] == 0
    with open(tmp_path / "b0.csv") as f:
        shared_from = {(r["kind"], r["shared_from"]) for r in csv.DictReader(f)}
    assert shared_from == {("base", a["verification_study"]), ("candidate", ""), ("control", "")}
    # the report's scale line says which runs it did not train itself
    page = (write_report("b", url, tmp_path / "rb").folder / "index.html").read_text()
    assert (
        "6 training runs from scratch (2 of them trained by another verification with the same "
        f"recipe and taken over: <code>{a['verification_study']}</code>)"
    ) in page
    page = (write_report("a", url, tmp_path / "ra").folder / "index.html").read_text()
    assert "6 training runs from scratch on " in page and "taken over" not in page
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "s.log"))
    )
    theirs = optuna.load_study(study_name=a["verification_study"], storage=storage)
    ours = optuna.load_study(study_name=b["verification_study"], storage=storage)
    shared = [t for t in ours.trials if "shared_from" in t.user_attrs]
    assert sorted(t.user_attrs["seed"] for t in shared) == [0, 1]
    for t in shared:
        twin = next(u for u in theirs.trials if u.user_attrs["run"] == t.user_attrs["run"])
        assert t.user_attrs["shared_from"] == a["verification_study"]
        assert t.intermediate_values == twin.intermediate_values and t.value == twin.value
        assert t.user_attrs["result"]["kind"] == "base" and t.user_attrs["kind"] == "base"
    # another recipe is another setting: nothing taken over
    c, c_err = verify("b", "--lr", "0.001")
    assert "taken over" not in c_err and c["skipped"] == 0 and c["trained"] == 6
