"""Width bounds are honoured or refused: the grid never leaves [min, max], and bounds that no
width vector meets, or that leave no budget binding, fail before solving with what to change."""

from __future__ import annotations

import math

import optuna
import pytest

from tests.conftest import SMALL, count, zoo_space
from widthsearch.search import SearchTrial
from widthsearch.solve.program import BoundsError, SynExpProgram
from widthsearch.solve.reconfigure import reconfigure
from widthsearch.solve.rounding import width_grid
from widthsearch.studyfile import Ranges, StudyConfig


def _ratios(space, widths):
    return [w / g.width for g, w in zip(space.groups, widths, strict=True) if not g.fixed]


@pytest.mark.parametrize("mode", ["precrop", "preconfig"])
def test_max_width_below_base_is_an_upper_bound_in_both_modes(mode):
    space = zoo_space("resnet18")
    program = SynExpProgram(space)
    budget = int(0.2 * space.params())
    result = reconfigure(space, params=budget, mode=mode, max_width=0.5, program=program)
    assert max(_ratios(space, result.widths)) <= 0.5
    assert result.max_width == 0.5 and result.params <= budget
    assert count(space.realize(result.widths), SMALL) == (result.params, result.macs)
    assert result.rounding_loss >= -1e-6  # rounding stays in the solver's box: it cannot gain


def test_grid_stays_within_the_bounds():
    space = zoo_space("efficientnet_b0")
    for lo, hi in [(0.1, 0.5), (0.1, 2.0), (0.3, 0.9), (1.2, 2.5)]:
        grid = width_grid(space, divisor=2, min_width=lo, max_width=hi)
        for g, values in zip(space.groups, grid, strict=True):
            if not g.fixed:
                assert all(lo * g.width - 1e-9 <= v <= hi * g.width + 1e-9 for v in values)
                assert (g.width in values) == (lo <= 1 <= hi)


def test_a_group_with_no_width_within_the_bounds_is_refused_with_the_fix():
    """An SE group of 8 channels has no multiple of 8 at or below 0.5x: the issue's case."""
    space = zoo_space("efficientnet_b0")
    with pytest.raises(BoundsError) as err:
        width_grid(space, divisor=8, min_width=0.1, max_width=0.5)
    msg = str(err.value)
    assert "blocks.0.0.se.conv_reduce: 8 channels" in msg
    assert "raise max_width to 1" in msg and "lower divisor to 2" in msg
    width_grid(space, divisor=2, min_width=0.1, max_width=0.5)  # the fix it names works


def test_budgets_the_bounds_cannot_reach_are_refused_before_solving():
    space = zoo_space("efficientnet_b0")
    program = SynExpProgram(space)
    with pytest.raises(BoundsError, match=r"no budget binds: .* MACs 0\.2\d*x, within MACs <= 1x"):
        reconfigure(space, macs=space.macs(), max_width=0.5, divisor=2, program=program)
    with pytest.raises(BoundsError, match=r"no budget binds"):  # PreCrop at the base's MACs
        reconfigure(space, macs=space.macs(), mode="precrop", program=program)
    assert program.solves == 0


@pytest.mark.parametrize(
    "bounds,match",
    [
        ({"min_width": 0.6, "max_width": 0.5}, r"0 < min_width \(0\.6\) <= max_width \(0\.5\)"),
        ({"max_width": 20.0}, "max_width=20 is above 16"),
        ({"min_width": math.nan}, "finite"),
    ],
)
def test_impossible_bounds_are_refused(bounds, match):
    space = zoo_space("resnet18")
    with pytest.raises(BoundsError, match=match):
        reconfigure(space, params=space.params() // 2, **bounds)


def test_precrop_refuses_a_max_width_above_one():
    space = zoo_space("resnet18")
    with pytest.raises(Exception, match="at most 1, not 1.5"):
        reconfigure(space, params=space.params() // 2, mode="precrop", max_width=1.5)


def test_search_prunes_a_mix_whose_min_exceeds_its_max():
    """A trial's bounds follow the same rules: recorded as sampled, pruned with the reason
    (a study file's ranges may overlap, so a trial can draw min > max)."""
    space = zoo_space("resnet18")
    ranges = Ranges(min_width=(0.05, 0.3), max_width=(0.1, 2.5))
    config = StudyConfig(model="resnet18", input_size=SMALL, ranges=ranges)
    objective = SearchTrial(space, config)
    mix = {"mode": "preconfig", "params_ratio": 0.5, "macs_ratio": 0.5, "divisor": 8}
    trial = optuna.trial.FixedTrial({**mix, "min_width": 0.2, "max_width": 1.5})
    assert objective(trial)[1] <= 0.5 * space.params()
    trial = optuna.trial.FixedTrial({**mix, "min_width": 0.2, "max_width": 0.15})
    with pytest.raises(optuna.TrialPruned, match=r"min_width \(0\.2\) <= max_width"):
        objective(trial)
    assert "min_width (0.2)" in trial.user_attrs["infeasible"]
