"""The one solve: ``reconfigure``, a search trial and verification's plan give the same widths
for the same request, on real timm models with real cvxpy solves; PreCrop on a grid above the
base is decided once, the same way everywhere, and said."""

from __future__ import annotations

import random
import re

import pytest

from tests.conftest import zoo_space
from widthsearch.errors import GridError, WidthSearchError
from widthsearch.models.widthfile import load_width_file, save_width_file
from widthsearch.search import Infeasible, SearchTrial
from widthsearch.search.settings import Ranges, SearchConfig
from widthsearch.solve import Budgets, reconfigure, run_baseline
from widthsearch.solve.solver import Problem, solve
from widthsearch.space.choices import GridSpec
from widthsearch.verify.plan import make_candidate, plan_from_width_files, with_controls

GRIDS = [
    None,
    "0.25x,0.5x,0.75x,1x",
    "0.5x,0.75x,1x,1.25x,1.5x",
    "16,32,64,128,256",
]
TIES = {
    "resnet18": [(), ("layer4.*",), ("layer3.*", "layer2.*")],
    "mobilenetv2_100": [(), ("blocks.6.*",)],
}


def _mixes(name: str, n: int, seed: int):
    """Seeded random requests: a budget mix, a mode, bounds, a grid and ties."""
    rng = random.Random(seed)
    for _ in range(n):
        mode = rng.choice(["precrop", "preconfig"])
        budgets = rng.choice([("params",), ("macs",), ("params", "macs")])
        ratios = {f"{b}_ratio": rng.uniform(0.3, 0.9) for b in budgets}
        grid = rng.choice(GRIDS)
        ties = rng.choice(TIES[name])
        if grid is None and not ties:
            grid = None
        mix = {
            "mode": mode,
            **ratios,
            "min_width": rng.choice([0.1, 0.2]),
            "divisor": rng.choice([8, 16]),
        }
        if mode == "preconfig":
            mix["max_width"] = rng.choice([1.5, 2.0])
        yield mix, grid, ties, rng.choice(["synexp", "groups"])


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2_100"])
def test_reconfigure_a_search_trial_and_verify_agree_on_random_requests(name, tmp_path):
    """For each random request: reconfigure's widths are the search trial's, the width file
    written from them gives verification the same problem, and the uniform control verify
    draws for it is reconfigure's uniform baseline on the candidate's MACs."""
    space = zoo_space(name)
    checked = 0
    for i, (mix, choices, ties, objective) in enumerate(_mixes(name, 6, seed=len(name))):
        grid = GridSpec.parse(choices, list(ties))
        config = SearchConfig(
            model=name,
            input_size=space.input_size,
            ranges=Ranges(),
            grid=grid,
            objective=objective,
        )
        trial = SearchTrial(space, config)
        kwargs = {
            "params": mix.get("params_ratio"),
            "macs": mix.get("macs_ratio"),
            "mode": mix["mode"],
            "min_width": mix["min_width"],
            "max_width": mix.get("max_width"),
            "divisor": mix["divisor"],
            "choices": None if grid.empty else grid,
            "objective": objective,
        }
        try:
            result = reconfigure(space, **{k: v for k, v in kwargs.items() if v is not None})
        except WidthSearchError as exc:  # the trial must refuse the same request too
            with pytest.raises(Infeasible, match=re.escape(str(exc)[:40])):
                trial.run(i, mix)
            continue
        # the trial takes ratios of the base, floored like reconfigure's budgets
        widths, values = trial.evaluate(mix)
        assert tuple(widths) == result.widths, (mix, choices, ties, objective)
        assert values[1:3] == (result.params, result.macs)
        # a width file of the result gives verification the same problem, and its uniform
        # control is reconfigure's uniform baseline held to the candidate's MACs alone
        path = tmp_path / f"w{i}.json"
        save_width_file(path, result, space)
        problem = load_width_file(path).problem()
        assert (problem.mode, problem.divisor, problem.grid, problem.objective) == (
            result.mode,
            result.divisor,
            result.grid,
            objective,
        )
        plan = plan_from_width_files([path])
        control = next(c for c in plan.candidates if c.kind == "control")
        alone = reconfigure(space, macs=result.macs, **_same_problem(kwargs))
        baseline = run_baseline(alone, space, "uniform")
        assert control.widths == baseline.widths
        checked += 1
    assert checked >= 3  # most requests are feasible


def _same_problem(kwargs):
    keep = ("mode", "min_width", "max_width", "divisor", "choices", "objective")
    return {k: kwargs[k] for k in keep if kwargs.get(k) is not None}


def test_precrop_on_a_grid_above_the_base_is_cut_at_the_base_everywhere_and_said():
    """``reconfig --mode precrop --choices ...,1.5x`` used to refuse while a search trial
    silently capped the grid: now both keep each group's widths at or below its base, and the
    result says so."""
    space = zoo_space("resnet18")
    grid = GridSpec.parse("0.5x,1x,1.5x")
    result = reconfigure(space, macs=0.6, mode="precrop", choices=grid)
    assert all(w <= b for w, b in zip(result.widths, space.base_widths, strict=True))
    assert result.decisions and "above the base were left out" in result.decisions[0]
    assert result.to_dict()["decisions"] == list(result.decisions)
    config = SearchConfig(model="resnet18", input_size=space.input_size, grid=grid)
    trial = SearchTrial(space, config)
    mix = {"mode": "precrop", "macs_ratio": 0.6, "min_width": 0.1, "divisor": 8}
    number = 7
    widths, _, attrs = trial.run(number, mix)
    assert tuple(widths) == result.widths
    assert attrs["decisions"] == list(result.decisions)


def test_precrop_refuses_a_grid_with_no_width_at_or_below_a_base():
    space = zoo_space("resnet18")
    with pytest.raises(GridError, match="no width at or below its base"):
        reconfigure(space, macs=0.6, mode="precrop", choices="1.25x,1.5x")


def test_strategies_on_one_problem():
    """The uniform strategy is one multiplier on every group; the random one holds the
    budgets; the objective's optimum is at least as good as both under the same budgets."""
    space = zoo_space("resnet18")
    problem = Problem(Budgets(macs=space.macs() // 2), grid=GridSpec.parse("0.25x,0.5x,0.75x,1x"))
    best = solve(space, problem)
    uniform = solve(space, problem, strategy="uniform")
    shaped = solve(space, problem, strategy="random", seed=3, shape_range=(0.25, 1.0))
    ratios = {w / g.width for g, w in zip(space.groups, uniform.widths, strict=True) if not g.fixed}
    assert len(ratios) == 1
    for sol in (best, uniform, shaped):
        assert space.macs(sol.widths) <= problem.budgets.macs
    from widthsearch.solve import log_synexp

    assert log_synexp(space, best.widths) >= log_synexp(space, uniform.widths)
    assert log_synexp(space, best.widths) >= log_synexp(space, shaped.widths)
    assert best.lattice is not None and best.strategy == "best" and uniform.strategy == "uniform"
    with pytest.raises(WidthSearchError, match="unknown strategy"):
        solve(space, problem, strategy="greedy")  # type: ignore[arg-type]


def test_a_search_trial_maximizes_the_studys_objective():
    """A trial used to maximize SynExp whatever the study asked for; now it takes the
    study's objective, as reconfigure does, on the divisor grid too."""
    space = zoo_space("resnet18")
    mix = {"mode": "preconfig", "macs_ratio": 0.5, "min_width": 0.1, "max_width": 2.0}
    mix["divisor"] = 8
    for objective in ("synexp", "depth-width"):
        config = SearchConfig(model="resnet18", input_size=space.input_size, objective=objective)
        widths, values = SearchTrial(space, config).evaluate(mix)
        expected = reconfigure(space, macs=0.5, objective=objective)
        assert tuple(widths) == expected.widths
        if objective != "synexp":
            assert values[0] == pytest.approx(expected.objective_value)
    assert config.axes[0] == "depth-width"


def test_verify_draws_the_same_controls_from_a_file_and_from_the_plan(tmp_path):
    """``verify FILE`` and a plan with the same problem draw the same controls (issue 33.4)."""
    space = zoo_space("resnet18")
    grid = GridSpec.parse("0.25x,0.5x,0.75x,1x", ["layer4.*"])
    result = reconfigure(space, macs=0.4, mode="precrop", choices=grid)
    path = tmp_path / "w.json"
    save_width_file(path, result, space)
    from_file = plan_from_width_files([path])
    cand = make_candidate(space, "w", "candidate", result.widths)
    direct = with_controls(space, [cand], result.problem, "test")
    assert [c.widths for c in from_file.candidates] == [c.widths for c in direct.candidates]
    assert from_file.grid == grid
    file_problem = load_width_file(path).problem()
    shaped = [
        [c.widths for c in with_controls(space, [cand], p, "test", random=2).candidates]
        for p in (file_problem, result.problem)
    ]
    assert shaped[0] == shaped[1] and len(shaped[0]) == len(direct.candidates) + 2


def test_grid_decisions_and_an_honest_uniform_row(capsys):
    """An absolute grid says which groups it restricted and whose base it misses; the row
    named uniform is a uniform multiplier only where it is one."""
    space = zoo_space("resnet18")
    result = reconfigure(space, macs=0.5, choices="24,48,96,192,384,768", baselines=["uniform"])
    text = " ".join(result.decisions)
    assert "keep only the listed widths" in text and "base width is not on the grid" in text
    (uniform,) = result.baselines
    ratios = {w / g.width for g, w in zip(space.groups, uniform.widths, strict=True) if not g.fixed}
    assert uniform.description.startswith("grid point nearest uniform") == (len(ratios) > 1)
    multipliers = reconfigure(space, macs=0.5, choices="0.25x,0.5x,0.75x,1x", baselines=["uniform"])
    assert multipliers.baselines[0].description.startswith("uniform multiplier")


def test_per_group_choices_on_the_command_line(capsys):
    from widthsearch.cli import main

    args = ["reconfig", "resnet18", "--input-size", "3,64,64", "--macs", "0.5", "--json"]
    grid = ["--choices", "0.5x,1x", "--choices", "layer4.*=0.25x,0.5x,1x"]
    assert main([*args, *grid, "--baselines", "none"]) == 0
    info = __import__("json").loads(capsys.readouterr().out)
    assert info["grid"]["groups"] == {"layer4.*": "0.25x,0.5x,1x"}
    assert info["grid"]["choices"] == "0.5x,1x"
    assert main([*args, "--choices", "0.5x,1x", "--choices", "0.25x,1x"]) == 2
    assert "both set every group's grid" in capsys.readouterr().err


def test_the_best_k_points_come_in_order_from_the_one_solve():
    """``top=K``: the K best lattice points under the budgets, best first, distinct, each within
    every budget; the divisor grid has one answer per budget and says so."""
    from widthsearch.solve import log_synexp

    space = zoo_space("resnet18")
    grid = GridSpec.parse("0.25x,0.5x,0.75x,1x", ["layer4.*", "layer3.*"])
    problem = Problem(Budgets(macs=space.macs() // 2), mode="precrop", grid=grid, top=6)
    sol = solve(space, problem)
    assert len(sol.ranked) == 6 and sol.ranked[0] == sol.widths
    assert len(set(sol.ranked)) == 6
    values = [log_synexp(space, w) for w in sol.ranked]
    assert all(a >= b - 1e-9 for a, b in zip(values, values[1:], strict=False))
    assert all(space.macs(w) <= problem.budgets.macs for w in sol.ranked)
    assert [p.rank for p in sol.ranked_picks] == list(range(1, 7))
    with pytest.raises(WidthSearchError, match="need a width grid"):
        solve(space, Problem(Budgets(macs=space.macs() // 2), top=3))
