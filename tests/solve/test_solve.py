"""The SynExp geometric program, rounding with repair, infeasibility and baselines: real solves."""

from __future__ import annotations

import math

import pytest

from tests.conftest import SMALL, ZOO, count, zoo_space
from widthsearch.solve.baselines import synflow, uniform
from widthsearch.solve.program import Budgets, InfeasibleBudgetError, SynExpProgram
from widthsearch.solve.reconfigure import parse_budget, reconfigure
from widthsearch.solve.rounding import width_grid
from widthsearch.solve.synexp import log_synexp


@pytest.mark.parametrize("name", ZOO)
def test_precrop_half_params_holds_after_rounding(name):
    space = zoo_space(name)
    budget = space.params() // 2
    result = reconfigure(space, params=budget, mode="precrop", baselines=())
    assert all(w <= b for w, b in zip(result.widths, space.base_widths, strict=True))
    model = space.realize(result.widths)
    params, macs = count(model, SMALL)
    assert params == result.params <= budget
    assert macs == result.macs
    assert result.params > 0.9 * budget  # fill used what rounding left over
    assert result.log_synexp_gain < 0  # pruning removes weights


def test_same_flops_preconfig_grows_synexp_at_base_macs():
    space = zoo_space("efficientnet_b0")
    result = reconfigure(space, macs=space.macs(), baselines=("uniform",))
    assert result.macs <= space.macs()
    assert result.log_synexp_gain > 0
    assert any(w > b for w, b in zip(result.widths, space.base_widths, strict=True))
    assert all(w <= 2 * b for w, b in zip(result.widths, space.base_widths, strict=True))
    assert count(space.realize(result.widths), SMALL) == (result.params, result.macs)


def test_paper_setting_80_percent_params_same_macs_beats_uniform():
    space = zoo_space("efficientnet_b0")
    budget = int(0.8 * space.params())
    result = reconfigure(space, params=budget, macs=space.macs(), baselines=("uniform",))
    assert result.params <= budget and result.macs <= space.macs()
    assert result.params > 0.78 * space.params()
    (uni,) = result.baselines
    assert uni.params <= budget and uni.macs <= space.macs()
    assert result.log_synexp_gain > uni.log_synexp


def test_program_is_built_once_and_resolved_with_new_parameters():
    space = zoo_space("mobilenetv2_100")
    program = SynExpProgram(space)
    problem = program.problem
    loose = program.solve(Budgets(params=int(0.7 * space.params())), min_width=0.1, max_width=1)
    tight = program.solve(Budgets(params=int(0.3 * space.params())), min_width=0.1, max_width=1)
    assert program.problem is problem and program.solves == 2
    assert problem._cache.param_prog is not None  # compiled once, parameters substituted after
    widths = lambda sol: [x * w for x, w in zip(sol.multipliers, space.base_widths, strict=True)]  # noqa: E731
    assert log_synexp(space, widths(tight)) < log_synexp(space, widths(loose))
    x = tight.multipliers  # the params budget is active at the optimum
    value = sum(
        c * math.prod(x[g] ** e for g, e in m.items())
        for c, m in space.param_cost.in_multipliers(space.base_widths)
    )
    assert value == pytest.approx(0.3 * space.params(), rel=1e-3)


def test_infeasible_budget_fails_before_solving_with_the_reachable_minimum():
    space = zoo_space("efficientnet_b0")
    program = SynExpProgram(space)
    with pytest.raises(
        InfeasibleBudgetError,
        match=r"params 0\.01x .* below the 0\.0\d+x .* "
        r"reachable with min_width=0\.1",
    ):
        reconfigure(space, params=int(0.01 * space.params()), program=program, baselines=())
    assert program.solves == 0


def test_grid_floor_infeasibility_is_explained():
    space = zoo_space("resnet18")
    with pytest.raises(InfeasibleBudgetError, match="multiple-of-256 grid"):
        reconfigure(
            space,
            params=int(0.2 * space.params()),
            mode="precrop",
            divisor=256,
            min_width=0.05,
            baselines=(),
        )


def test_rounded_widths_sit_on_the_grid():
    space = zoo_space("resnext50_32x4d")
    result = reconfigure(space, macs=space.macs() // 2, mode="precrop", baselines=())
    grid = width_grid(space, divisor=8, min_width=0.1, max_width=1.0)
    for g, w in zip(space.groups, result.widths, strict=True):
        assert w in grid[g.id]
        assert w == g.width or w % math.lcm(8, g.multiple_of) == 0
    assert count(space.realize(result.widths), SMALL)[1] == result.macs <= space.macs() // 2


def test_uniform_baseline_is_the_largest_multiplier_that_fits():
    space = zoo_space("mobilenetv2_100")
    budgets = Budgets(params=int(0.6 * space.params()))
    grid = width_grid(space, divisor=8, min_width=0.1, max_width=1.0)
    base = uniform(space, budgets, grid, min_width=0.1, max_width=1.0)
    assert base.params <= budgets.params
    alpha = float(base.description.split()[2].rstrip("x"))
    bigger = [
        g.width
        if g.fixed
        else min((v for v in grid[g.id]), key=lambda v: abs(v - (alpha + 0.01) * g.width))
        for g in space.groups
    ]
    assert space.params(bigger) > budgets.params or bigger == list(base.widths)


def test_synflow_baseline_prunes_to_the_parameter_budget():
    space = zoo_space("mobilenetv2_100")
    budget = int(0.5 * space.params())
    result = synflow(space, Budgets(params=budget), rounds=10)
    assert abs(result.params - budget) <= 1
    assert result.densities and all(0 <= p <= 1 for p in result.densities.values())
    assert result.log_synexp is not None and result.log_synexp < 0
    none = synflow(space, Budgets(macs=space.macs()))
    assert none.log_synexp is None and "no parameter budget" in none.note


@pytest.mark.parametrize(
    "text,per,expect",
    [
        ("0.8", 1, 800),
        ("4.2M", 1, 4_200_000),
        ("300e6", 1, 300_000_000),
        ("1000", 1, 1000),
        ("600e6", 2, 300_000_000),
        ("1.5", 1, 1500),
        ("2k", 1, 2000),
    ],
)
def test_parse_budget(text, per, expect):
    assert parse_budget(text, 1000, per=per) == expect


@pytest.mark.parametrize("text", ["abc", "-0.5", "0", "1.2X"])
def test_parse_budget_rejects(text):
    from widthsearch import WidthSearchError

    with pytest.raises(WidthSearchError):
        parse_budget(text, 1000)
