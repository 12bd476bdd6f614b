"""Messages a new user meets (issue 27 item 9): each one line that says what to do, exit 2 and
nothing written; warnings as one line; a closed pipe is not an error."""

from __future__ import annotations

import json
import os
import sys

import optuna
import pytest

from tests.conftest import SMALL, zoo_space
from widthsearch.cli import main
from widthsearch.errors import StorageError
from widthsearch.models.export import check_module_path
from widthsearch.models.widthfile import save_width_file
from widthsearch.solve.reconfigure import reconfigure
from widthsearch.storage import open_storage


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("widthsearch: error: ")
    return err


def test_a_journal_without_a_path_asks_for_one_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match="names no journal file: give its path, e.g."):
        open_storage("journal:")
    with pytest.raises(StorageError, match="is a folder: give a file in it"):
        open_storage(f"journal:{tmp_path}")
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_option_gets_its_commands_usage_and_the_closest_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reconfig", "resnet18", "--parms", "0.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: widthsearch reconfig ")
    assert err.strip().endswith("unrecognized arguments: --parms 0.5; did you mean --params?")
    with pytest.raises(SystemExit):
        main(["search", "resnet18", "--trails=5"])
    assert "did you mean --trials?" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # nothing close: no guess
        main(["search", "resnet18", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_a_negative_budget_says_it_must_be_positive(capsys):
    for flag, value in (("--params", "-1"), ("--macs", "-0.5"), ("--params", "0")):
        assert main(["reconfig", "resnet18", "--input-size", "32", flag, value]) == 2
        err = _one_line_error(capsys)
        assert f"budget '{value}' must be positive" in err and "neither" not in err


def test_a_closed_stdout_ends_the_command_quietly_with_status_0(monkeypatch, capsys):
    """`widthsearch ... | head -1`: the reader closed the pipe; that is not a failure."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone: every write to the pipe fails with EPIPE
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["inspect", "resnet18", "--input-size", "32"]) == 0
        monkeypatch.undo()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("stem", ["timm", "torch", "widthsearch", "json", "numpy"])
def test_export_refuses_a_module_name_that_shadows_an_importable_one(tmp_path, capsys, stem):
    py = tmp_path / f"{stem}.py"
    assert main(["export", str(tmp_path / "w.json"), "--py", str(py)]) == 2
    err = _one_line_error(capsys)
    assert "would shadow" in err and f"'{stem}'" in err and f"{stem}_ws.py" in err
    assert not py.exists()


def test_export_may_write_over_its_own_earlier_module(tmp_path, monkeypatch):
    py = tmp_path / "my_resnet_ws.py"
    py.write_text("# an earlier export\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable from here, as after a first export
    assert check_module_path(py) == py


def test_an_unknown_model_leaves_no_storage_file(tmp_path, capsys):
    db = tmp_path / "new.db"
    args = ["search", "resnet19", "--storage", f"sqlite:///{db}", "--trials", "2"]
    assert main(args) == 2
    assert "unknown model 'resnet19'" in _one_line_error(capsys)
    assert not db.exists()
    study = tmp_path / "s.toml"
    study.write_text('model = "resnet19"\n[search]\ntrials = 2\n')
    assert main(["run", str(study), "--storage", f"sqlite:///{db}"]) == 2
    assert "unknown model 'resnet19'" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == [study]


def test_verify_names_the_users_studies_not_its_own_verification_studies(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(db)
    optuna.create_study(study_name="mine", storage=storage, directions=["maximize"])
    optuna.create_study(study_name="mine/verify-0123abcd", storage=storage)
    assert main(["verify", "other", "--storage", db]) == 2
    err = _one_line_error(capsys)
    assert "it holds mine, and 1 verification study of verify" in err
    assert "verify-0123abcd" not in err
    assert main(["verify", "mine/verify-0123abcd", "--storage", db]) == 2
    assert "is verify's record of the training runs of 'mine', not a search; give 'mine'" in (
        _one_line_error(capsys)
    )


def test_a_hand_edited_width_file_warns_in_one_line(tmp_path, capsys):
    space = zoo_space("resnet18")
    result = reconfigure(space, params=space.params() // 2, baselines=())
    path = tmp_path / "w.json"
    save_width_file(path, result, space)
    data = json.loads(path.read_text())
    data["groups"][3]["width"] += 8
    path.write_text(json.dumps(data))
    assert main(["export", str(path), "--py", str(tmp_path / "edited.py")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("widthsearch: warning: ") and "edited by hand?" in err[0]
    assert "UserWarning" not in err[0] and "warnings.warn" not in err[0]
    assert tuple(data["input_size"]) == SMALL


def test_rounding_that_gains_says_so_instead_of_a_negative_cost():
    from widthsearch.cli.reconfig import rounding_words

    assert rounding_words(0.6, 8) == "rounding to multiples of 8 cost 0.60"
    assert rounding_words(0.001, 8) == "rounding to multiples of 8 cost nothing"
    gained = rounding_words(-0.6, 8)
    assert gained.startswith("rounding to multiples of 8 gained 0.60: ") and "-0.60" not in gained
