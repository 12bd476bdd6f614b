"""Item 1 of issue 27: a quick check never writes into a report folder unless asked to, and no
command replaces a report of a larger scale with a smaller one without being told to."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from widthsearch.cli import main
from widthsearch.errors import ReportScaleError
from widthsearch.report.scale import ReportScale, check_replace, read_scale
from widthsearch.verify import latency as verify_module

REPORTS = Path(__file__).resolve().parents[2] / "reports"

STUDY = """
model = "resnet18"
input_size = [3, 16, 16]

[search]
study = "tiny"
trials = 6
seed = 0

[search.ranges]
params = [0.3, 0.9]
macs = false
mode = ["precrop"]

[verify]
data = "digits"
top = 1
epochs = 1
seeds = [0]

[report]
path = "out/tiny"
"""


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_what_counts_as_smaller():
    full = ReportScale(trials=200, verified=True, epochs=4, seeds=3)
    assert full.smaller_than(full) == []
    assert ReportScale(trials=200, verified=True, epochs=4, max_steps=1, seeds=3).smaller_than(
        full
    ) == ["a quick check (at most 1 steps) where it has a full run"]
    assert ReportScale(trials=12).smaller_than(full) == [
        "12 search trials where it has 200",
        "no verification where it has one",
    ]
    assert ReportScale(trials=200, verified=True, epochs=2, seeds=1).smaller_than(full) == [
        "2 epochs where it has 4",
        "1 seeds where it has 3",
    ]
    assert full.smaller_than(ReportScale(trials=200)) == []  # more is never refused
    small = ReportScale(trials=200, verified=True, epochs=4, max_steps=50, train_subset=512)
    bigger = ReportScale(trials=200, verified=True, epochs=4, max_steps=100, train_subset=512)
    assert small.smaller_than(bigger) == ["at most 50 steps where it has 100"]
    assert bigger.smaller_than(small) == []


@pytest.mark.skipif(not (REPORTS / "resnet50_precrop_flops").is_dir(), reason="no reports/")
def test_committed_reports_read_their_scale_and_refuse_a_quick_check():
    """The pages the issue saw overwritten: written before the meta tag, read from their text
    and verify.csv (4 epochs over seeds 0 and 1, 200 trials). Only read here."""
    folder = REPORTS / "resnet50_precrop_flops"
    before = _digest(folder)
    scale = read_scale(folder)
    assert scale == ReportScale(trials=200, verified=True, epochs=4, seeds=2)
    quick = ReportScale(trials=200, verified=True, epochs=4, max_steps=1, train_subset=64, seeds=2)
    with pytest.raises(ReportScaleError) as err:
        check_replace(folder, quick)
    assert "a quick check (at most 1 steps, 64 training images) where it has a full run" in str(
        err.value
    )
    assert "replace=True" in str(err.value) and "--replace" not in str(err.value)
    assert "--replace" in err.value.worded({"replace": "--replace"})
    check_replace(folder, quick, replace=True)  # told to: no refusal
    assert read_scale(REPORTS / "no such study") is None
    assert _digest(folder) == before


@pytest.mark.slow
@pytest.mark.skipif(not (REPORTS / "resnet50_precrop_flops").is_dir(), reason="no reports/")
def test_a_quick_run_leaves_the_report_and_a_smaller_one_is_refused(tmp_path, monkeypatch, capsys):
    """The README's smoke test against a folder holding a full report (a copy of a committed
    page: 200 trials, 4 epochs over 2 seeds)."""
    import shutil

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(verify_module, "NOISY_SPREAD", math.inf)
    monkeypatch.setattr(verify_module, "BUSY_CORES", math.inf)
    (tmp_path / "tiny.toml").write_text(STUDY)
    report = tmp_path / "out" / "tiny"
    report.mkdir(parents=True)
    for name in ("index.html", "verify.csv"):
        shutil.copy(REPORTS / "resnet50_precrop_flops" / name, report / name)
    full = _digest(report)
    db = f"sqlite:///{tmp_path / 's.db'}"
    quick = ["--max-steps", "1", "--train-subset", "64"]

    # asked into the report folder: refused before any work, one line, nothing changed
    assert main(["run", "tiny.toml", "--storage", db, *quick, "-o", "out/tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "out/tiny holds a larger report (200 trials; 4 epochs, 2 seeds)" in err
    assert "a quick check (at most 1 steps, 64 training images) where it has a full run" in err
    assert "-o DIR" in err and "--replace" in err
    assert not (tmp_path / "s.db").exists() and _digest(report) == full

    # not asked: a quick check goes to runs/quick/tiny, the [report] folder is untouched
    assert main(["run", "tiny.toml", "--storage", db, *quick]) == 0
    out = capsys.readouterr().out
    assert "report: runs/quick/tiny/index.html" in out and "not to the study's report" in out
    assert (tmp_path / "runs" / "quick" / "tiny" / "verify.csv").is_file()
    assert read_scale(tmp_path / "runs" / "quick" / "tiny") == ReportScale(
        trials=6, verified=True, epochs=1, max_steps=1, train_subset=64, seeds=1
    )
    assert _digest(report) == full

    # `report` of the study into the folder: refused the same way; told to, it replaces
    assert main(["report", "tiny", "--storage", db, "-o", "out/tiny"]) == 2
    assert "--replace" in capsys.readouterr().err
    assert _digest(report) == full
    assert main(["report", "tiny", "--storage", db, "-o", "out/tiny", "--replace"]) == 0
    assert read_scale(report).quick
