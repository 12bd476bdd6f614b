"""Objectives beyond SynExp: the registry, their separable weights, and real solves with each."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import SMALL, count, zoo_space
from widthsearch.errors import WidthSearchError
from widthsearch.solve.objectives import (
    OBJECTIVES,
    get_objective,
    group_terms,
    score,
    weights,
)
from widthsearch.solve.program import objective_exponents
from widthsearch.solve.reconfigure import reconfigure
from widthsearch.solve.rounding import width_grid
from widthsearch.solve.synexp import log_synexp


def test_synexp_weights_are_the_programs_exponents_and_give_log_synexp():
    space = zoo_space("resnet18")
    a, b = weights(space, "synexp")
    exps = objective_exponents(space)
    assert a == [exps.get(g, 0.0) for g in range(len(space.groups))] and not any(b)
    widths = [max(8, w // 2 // 8 * 8) if not g.fixed else w for g, w in
              zip(space.groups, space.base_widths, strict=True)]  # fmt: skip
    # resnet18 has no concatenations: the separable SynExp is the exact one
    assert score(space, "synexp", widths) == pytest.approx(log_synexp(space, widths), abs=1e-9)


def test_group_terms_add_up_to_the_score():
    space = zoo_space("mobilenetv2_100")
    grid = width_grid(space, divisor=8, min_width=0.25, max_width=1.0)
    for name in OBJECTIVES:
        term = group_terms(space, name)
        table = [list(term(g, np.array(grid[g.id], dtype=float))) for g in space.groups]
        pick = [len(options) // 2 for options in grid]
        widths = [grid[g][i] for g, i in enumerate(pick)]
        total = sum(table[g][i] for g, i in enumerate(pick))
        at_base = sum(table[g][grid[g].index(w)] for g, w in enumerate(space.base_widths))
        assert total - at_base == pytest.approx(score(space, name, widths), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", ["groups", "synexp-held", "depth-width"])
def test_every_objective_solves_holds_the_budget_and_is_recorded(name):
    space = zoo_space("resnet18")
    budget = space.macs() // 2
    result = reconfigure(space, macs=budget, mode="precrop", objective=name)
    assert count(space.realize(result.widths), SMALL) == (result.params, result.macs)
    assert result.macs <= budget and result.macs > 0.9 * budget
    assert result.objective == name and result.to_dict()["objective"] == name
    synexp = reconfigure(space, macs=budget, mode="precrop")
    assert result.widths != synexp.widths  # a different objective, a different shape
    if name == "synexp-held":
        assert result.held == ("params",)
        assert result.params <= result.budgets.params < space.params()
        # held at the uniform multiplier's params at this MACs budget: within a few percent
        alpha = math.sqrt(budget / space.macs())
        assert result.budgets.params == pytest.approx(alpha**2 * space.params(), rel=0.05)
    else:
        assert result.objective_value == pytest.approx(score(space, name, result.widths))
        assert result.objective_value > score(space, name, synexp.widths) - 1e-9


def test_unknown_objective_is_one_clear_error():
    space = zoo_space("resnet18")
    with pytest.raises(WidthSearchError, match="unknown objective 'paths'; choose from synexp"):
        reconfigure(space, macs=space.macs() // 2, objective="paths")
    assert get_objective(OBJECTIVES["groups"]) is OBJECTIVES["groups"]


def test_reconfig_objective_flag_is_printed_and_recorded_in_the_width_file(capsys, tmp_path):
    import json

    from widthsearch.cli import main

    out = tmp_path / "w.json"
    args = ["reconfig", "resnet18", "--input-size", "64", "--macs", "0.5", "--mode", "precrop"]
    assert main([*args, "--objective", "depth-width", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "objective depth-width:" in printed
    record = json.loads(out.read_text())
    assert record["objective"] == "depth-width" and record["held"] == []
    assert main([*args, "--objective", "synexp-held", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["objective"] == "synexp-held" and info["held"] == ["params"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--objective", "paths"])
    assert exc.value.code == 2 and "invalid choice: 'paths'" in capsys.readouterr().err
