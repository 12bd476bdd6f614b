"""Training in the loop (``reconfig --train-top K``): the best K lattice points trained with
successive halving, the winner confirmed with fresh seeds, the choice and its cost recorded in
the width file; a re-run resumes from the storage. Real training steps on real images (the
bundled digits), kept tiny: a smoke test of the route, not a result."""

from __future__ import annotations

import json

import pytest

from widthsearch.cli import main
from widthsearch.models.widthfile import load_width_file

ROUTE = [
    "reconfig",
    "resnet18",
    "--input-size",
    "3,16,16",
    "--choices",
    "0.25x,0.5x,0.75x,1x",
    "--tie",
    "layer4.*,layer3.*",
    "--macs",
    "0.5",
    "--train-top",
    "3",
    "--epochs",
    "1",
    "--max-steps",
    "2",
    "--train-subset",
    "64",
    "--confirm-seeds",
    "7,8",
    "--baselines",
    "none",
]


@pytest.mark.slow
def test_train_top_chooses_among_the_best_points_records_how_and_resumes(tmp_path, capsys):
    out, db = tmp_path / "w.json", f"sqlite:///{tmp_path / 'runs.db'}"
    assert main([*ROUTE, "--storage", db, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "training in the loop: the best 3 lattice points" in text and "chosen: rank" in text
    chosen = load_width_file(out).data["chosen_by"]
    assert chosen["route"] == "train-top" and chosen["k"] == 3
    assert [r["candidate"] for r in chosen["screening"]] == ["rank 1", "rank 2", "rank 3"]
    assert chosen["settings"]["confirm_seeds"] == [7, 8] and chosen["runs"] > 0
    # the widths written are the chosen point's, one of the three, with their own costs
    ranked = {r["candidate"]: r["widths"] for r in chosen["screening"]}
    wf = load_width_file(out)
    assert list(wf.widths) == ranked[chosen["chosen"]]
    if chosen["kept_objective"]:
        assert chosen["chosen"] == "rank 1"
    else:
        assert chosen["confirmation"]["vs_objective"]["label"] == "better"
    # a re-run trains nothing new: every run is in the storage
    assert main([*ROUTE, "--storage", db, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["chosen_by"]["chosen"] == chosen["chosen"]
    assert again["chosen_by"]["trained"] == 0 < chosen["trained"]
    assert [again["widths"][str(i)] for i in range(len(wf.widths))] == list(wf.widths)


def test_train_top_refuses_what_it_cannot_do_before_any_work(capsys, tmp_path):
    base = ["reconfig", "resnet18", "--input-size", "3,16,16", "--macs", "0.5"]
    for extra, words in [
        (["--train-top", "3"], "give --choices"),
        (["--choices", "0.5x,1x", "--train-top", "1"], "K >= 2"),
        (["--choices", "0.5x,1x", "--train-top", "3", "--confirm-seeds", "0"], "fresh"),
    ]:
        assert main([*base, *extra, "-o", str(tmp_path / "w.json")]) == 2
        assert words in capsys.readouterr().err
        assert not (tmp_path / "w.json").exists()
