"""A study file's ``[grid]`` through search and verify: every trial's widths are the best lattice
point of its mix (on the grid, within its budgets), the study records the grid, and the controls
of a verification are drawn on the same grid."""

from __future__ import annotations

import pytest

from tests.conftest import zoo_space
from widthsearch.errors import StudyConfigError
from widthsearch.search import SearchTrial
from widthsearch.search.study import study_settings
from widthsearch.solve import Budgets, best_point
from widthsearch.solve.solver import Problem
from widthsearch.studyfile import parse_config
from widthsearch.verify.plan import make_candidate, with_controls

GRID = {"choices": "0.25x,0.5x,0.75x,1x", "ties": [["layer4.*"], ["layer3.*"]]}


def _config(**grid):
    return parse_config(
        {
            "model": "resnet18",
            "input_size": [3, 64, 64],
            "grid": {**GRID, **grid},
            "search": {"trials": 4, "ranges": {"params": False, "macs": [0.3, 0.6]}},
        }
    )


@pytest.mark.slow
def test_trials_pick_the_best_lattice_point_of_their_mix():
    space = zoo_space("resnet18")
    config = _config()
    assert study_settings(config)["grid"]["ties"] == [["layer4.*"], ["layer3.*"]]
    lattice = config.grid.resolve(space, min_width=0.1, max_width=1.0)
    objective = SearchTrial(space, config)
    for ratio, mode in [(0.3, "precrop"), (0.45, "preconfig"), (0.6, "precrop")]:
        mix = {"mode": mode, "macs_ratio": ratio, "min_width": 0.1, "divisor": 8}
        if mode == "preconfig":
            mix["max_width"] = 1.5
        widths, values = objective.evaluate(mix)
        budget = int(ratio * space.macs())
        assert lattice.contains(widths) and space.macs(widths) <= budget
        best = best_point(space, Budgets(macs=budget), lattice)
        assert values[0] == pytest.approx(best.objective, abs=1e-9)


def test_verification_controls_stay_on_the_grid():
    space = zoo_space("resnet18")
    config = _config()
    lattice = config.grid.resolve(space, min_width=0.1, max_width=1.0)
    pick = best_point(space, Budgets(macs=int(0.4 * space.macs())), lattice)
    cand = make_candidate(space, "pick", "candidate", pick.widths)
    plan = with_controls(space, [cand], Problem(Budgets(), grid=config.grid), "test", random=3)
    controls = [c for c in plan.candidates if c.kind in ("control", "random")]
    assert [c.kind for c in controls].count("control") == 1 and len(controls) >= 3
    for c in controls:
        assert lattice.contains(c.widths) and c.macs <= cand.macs
    uniform = next(c for c in controls if c.kind == "control")
    ratios = {w / g.width for g, w in zip(space.groups, uniform.widths, strict=True) if not g.fixed}
    assert len(ratios) == 1
    assert plan.grid == config.grid


def test_a_bad_grid_table_is_refused_in_one_line():
    for grid, words in [({"choice": "1x"}, "did you mean"), ({"choices": "0.5"}, "neither")]:
        with pytest.raises(StudyConfigError, match=words):
            parse_config({"model": "resnet18", "grid": grid})
