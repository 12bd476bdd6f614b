"""Objectives and cost kinds are registries: one registered in one place is reachable from
every command (reconfig, search and its study, study files, width files, front, verification's
plan), with no other file touched. The registrations here are undone after each test."""

from __future__ import annotations

import json

import pytest

from widthsearch.cli import main
from widthsearch.models.widthfile import load_width_file
from widthsearch.solve.objectives import (
    OBJECTIVES,
    Objective,
    objective_exponents,
    register_objective,
    score,
)
from widthsearch.studyfile import parse_config
from widthsearch.verify.plan import plan_from_study

SMALL = ["--input-size", "3,32,32"]


def _head_heavy(space):
    """SynExp's exponents with the widest free group's weight tripled: a different argmax."""
    weights = objective_exponents(space)
    widest = max(space.free_groups, key=lambda g: g.width).id
    weights[widest] = 3 * weights.get(widest, 1.0)
    return weights


@pytest.fixture
def head_heavy():
    objective = register_objective(
        Objective("head-heavy", "test: SynExp, widest group x3", log_weights=_head_heavy)
    )
    yield objective
    OBJECTIVES.pop(objective.name)


def test_a_registered_objective_is_reachable_from_every_command(head_heavy, tmp_path, capsys):
    out = tmp_path / "w.json"
    reconfig = ["reconfig", "resnet18", *SMALL, "--macs", "0.5", "--baselines", "none"]
    assert main([*reconfig, "--objective", "head-heavy", "--json", "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["objective"] == "head-heavy" and info["objective_value"] is not None
    wf = load_width_file(out)
    assert wf.data["objective"] == "head-heavy" and wf.problem().objective == "head-heavy"
    space = wf.space()
    assert info["objective_value"] == pytest.approx(score(space, "head-heavy", wf.widths))
    assert main([*reconfig, "--objective", "synexp", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["widths"] != info["widths"]  # it maximized the registered objective

    # a search study records it; its trials' first value is the objective's; front ranks by it
    db = f"sqlite:///{tmp_path / 's.db'}"
    search = ["search", "resnet18", *SMALL, "--trials", "6", "--storage", db, "--seed", "1"]
    assert main([*search, "--objective", "head-heavy", "--json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front["objective"] == "head-heavy" and front["objectives"][0] == "head-heavy"
    for t in front["front"]:
        assert t["value"] == pytest.approx(score(space, "head-heavy", t["widths"]))
        assert t["log_synexp"] is not None  # kept beside it
    assert main([*search, "--objective", "synexp"]) == 2  # a re-run with another: refused
    assert "objective head-heavy (not synexp)" in capsys.readouterr().err
    plan = plan_from_study("resnet18", db, top=2)
    assert "head-heavy objective" in plan.pick and plan.problem.objective == "head-heavy"
    best = max(front["front"], key=lambda t: t["value"])
    if best["params"] <= space.params() and best["macs"] <= space.macs():
        assert plan.candidates[0].widths == tuple(best["widths"])

    # a study file names it
    config = parse_config({"model": "resnet18", "search": {"objective": "head-heavy"}})
    assert config.objective == "head-heavy" and config.axes[0] == "head-heavy"


def test_registering_twice_or_with_both_weights_is_refused(head_heavy):
    with pytest.raises(ValueError, match="registered already"):
        register_objective(head_heavy)
    with pytest.raises(ValueError, match="not both"):
        register_objective(
            Objective("both", "x", log_weights=_head_heavy, inverse_weights=_head_heavy)
        )
