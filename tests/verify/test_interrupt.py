"""Ctrl-C in a verification: the finished runs are kept, the message says where and how to go
on, and the same call again trains only what is missing."""

from __future__ import annotations

import csv

import pytest

import widthsearch.verify as verify
from widthsearch import WidthSpace
from widthsearch.errors import VerifyInterrupted
from widthsearch.models.widthfile import save_width_file
from widthsearch.solve.reconfigure import reconfigure
from widthsearch.train.data import load_dataset

TINY = (3, 16, 16)


@pytest.fixture
def width_file(tmp_path):
    space = WidthSpace.from_timm("resnet18", input_size=TINY)
    path = tmp_path / "w.json"
    save_width_file(path, reconfigure(space, params=space.params() // 2, baselines=()), space)
    return path


@pytest.mark.slow
def test_ctrl_c_in_verify_keeps_the_finished_runs_and_says_how_to_resume(tmp_path, width_file):
    digits = load_dataset("digits")
    db = f"sqlite:///{tmp_path / 'v.db'}"
    out = tmp_path / "r.csv"
    settings = verify.VerifySettings(
        epochs=2, max_steps=4, augment="none", head="timm", seeds=(0,), input_size=TINY
    )
    execution = verify.Execution(device="cpu", out=out, storage_url=db, latency_runs=0)
    started = []

    def progress(cand, seed):
        started.append(cand.label)

        def on_epoch(record):
            if len(started) == 2:  # the second run, after its first epoch's checkpoint
                raise KeyboardInterrupt

        return None, on_epoch, None

    plan = verify.plan_from_width_files([width_file])
    with pytest.raises(VerifyInterrupted) as exc:
        verify.run_verify(plan, digits, settings, execution, progress=progress)
    message = str(exc.value)
    total = len({c.key for c in plan.candidates}) + 1  # the uniform control joins in prepare
    assert message.startswith("stopped with 1 of ") and " runs finished, kept in " in message
    assert db in message and str(out) in message
    assert "the run cut off resumes from its last epoch checkpoint in" in message
    assert message.endswith("run the same command again to continue (finished runs are skipped)")
    rows = list(csv.DictReader(out.open()))
    assert [r["candidate"] for r in rows] == [started[0]] and rows[0]["state"] == "complete"
    # the same call again: the finished run is skipped, the cut-off one resumes
    report = verify.run_verify(plan, digits, settings, execution)
    assert report.skipped == 1 and report.trained >= 1
    assert len(list(csv.DictReader(out.open()))) == report.skipped + report.trained
    assert total >= report.skipped + report.trained
