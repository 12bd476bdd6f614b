"""What a search says where no terminal watches it, and when it has nothing to do."""

from __future__ import annotations

import re

import pytest

from widthsearch.cli import main
from widthsearch.search import run as search_run


@pytest.mark.slow
def test_a_search_logs_plain_progress_lines_and_says_when_the_study_holds_its_trials(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(search_run, "LINE_SECONDS", 0.0)  # a line per trial
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "resnet18", "--input-size", "16", "--seed", "0", "--storage", db]
    assert main([*args, "--trials", "6"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("search: ")]
    assert lines[0] == "search: 0/6 trials finished; a line every 0 s"
    assert lines[-1].startswith("search: 6/6 trials finished (")
    counts = [int(re.match(r"search: (\d+)/6", line).group(1)) for line in lines]
    assert counts == sorted(counts) and len(lines) >= 3
    assert "\r" not in captured.err  # no bar redrawn into a log file
    assert captured.out.strip().splitlines()[-1].startswith("6 new trials in ")
    # a target the study holds already: nothing runs, and the line says so and what to do
    assert main([*args, "--trials", "4"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(
        "nothing ran: study 'resnet18' holds 6 finished trials, at least --trials 4 (which "
        "counts all of them); give --trials above 6 to add more"
    )
