"""The best lattice point, exactly: enumeration, the Lagrangian dynamic program and the branch
and bound it falls back to against brute force on small lattices of real timm models (real
cvxpy solves of the root relaxation), picks on the grid and within every budget, the best K in
order, lattices of any number of variables, the time limit with its gap, and the public API."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from tests.conftest import SMALL, count, zoo_space
from widthsearch.errors import InfeasibleBudgetError, SolverError
from widthsearch.solve import (
    Budgets,
    _maxsum,
    best_point,
    best_points,
    log_synexp,
    reconfigure,
    uniform_lattice,
)
from widthsearch.space.choices import GridSpec


def _points(space, lattice, objective=None):
    """Every lattice point counted on the exact cost model: (params, MACs, objective)."""
    objective = objective or (lambda w: log_synexp(space, w))
    out = []
    for point in itertools.product(*lattice.values):
        widths = list(space.base_widths)
        for c, w in zip(lattice.classes, point, strict=True):
            for g in c:
                widths[g] = w
        out.append((space.params(widths), space.macs(widths), objective(widths)))
    return out


def _brute(points, budgets):
    """The best objective of the points within ``budgets`` (brute force)."""
    p, m = budgets.params, budgets.macs
    return max(o for pp, mm, o in points if (p is None or pp <= p) and (m is None or mm <= m))


def _resnet_lattice(choices="0.25x,0.5x,1x"):
    space = zoo_space("resnet18")
    spec = GridSpec.parse(choices, ["layer2.*", "layer3.*", "layer4.*"])
    return space, spec.resolve(space, min_width=0.1, max_width=1.0)


def _mobilenet_lattice():
    space = zoo_space("mobilenetv2_100")
    spec = GridSpec.parse(
        "0.5x,1x",
        [  # the expansions of equal base width
            "blocks.1.1.conv_pw,blocks.2.0.conv_pw",
            "blocks.2.[12].conv_pw,blocks.3.0.conv_pw",
            "blocks.3.[123].conv_pw,blocks.4.0.conv_pw",
            "blocks.4.[12].conv_pw,blocks.5.0.conv_pw",
            "blocks.5.[12].conv_pw,blocks.6.0.conv_pw",
        ],
        groups={
            name: "1x" for name in ("conv_head", "blocks.0.0.conv_pw", "blocks.[56].0.conv_pwl")
        },
    )
    return space, spec.resolve(space, min_width=0.1, max_width=1.0)


def _check(space, lattice, budgets, pick):
    assert lattice.contains(pick.widths)
    for name, limit in budgets.limits().items():
        if limit is not None:
            assert getattr(space, name)(pick.widths) <= limit
    assert pick.objective == pytest.approx(log_synexp(space, pick.widths), abs=1e-9)
    assert pick.gap >= -1e-9


def _top(points, budgets, k):
    """The best ``k`` objectives of the points within ``budgets``, best first (brute force)."""
    p, m = budgets.params, budgets.macs
    fit = [o for pp, mm, o in points if (p is None or pp <= p) and (m is None or mm <= m)]
    return sorted(fit, reverse=True)[:k]


@pytest.mark.slow
@pytest.mark.parametrize("net", ["resnet", "mobilenet"])
def test_enumeration_and_search_equal_brute_force(net):
    space, lattice = _resnet_lattice() if net == "resnet" else _mobilenet_lattice()
    assert 500 < lattice.size <= 2048
    points = _points(space, lattice)
    lo_p, hi_p = min(x[0] for x in points), max(x[0] for x in points)
    lo_m, hi_m = min(x[1] for x in points), max(x[1] for x in points)

    def between(lo, hi, t):
        return int(lo + t * (hi - lo))

    for budgets in [
        Budgets(macs=between(lo_m, hi_m, 0.3)),
        Budgets(params=between(lo_p, hi_p, 0.45)),
        Budgets(params=between(lo_p, hi_p, 0.6), macs=between(lo_m, hi_m, 0.4)),
    ]:
        truth = _brute(points, budgets)
        enum = best_point(space, budgets, lattice)
        dp = best_point(space, budgets, lattice, enumerate_limit=0, time_limit=60)
        assert enum.method == "enumeration" and dp.method == "dynamic programming"
        assert enum.exact and dp.exact and dp.nodes >= 1 and dp.status == "exact"
        for pick in (enum, dp):
            _check(space, lattice, budgets, pick)
            assert pick.objective == pytest.approx(truth, abs=1e-7)
        # the relaxation and the Lagrangian bound every lattice point from above
        assert enum.relaxed_objective is not None and enum.relaxed_objective >= truth - 1e-6
        assert dp.lagrangian_bound is not None and dp.lagrangian_bound >= truth - 1e-9


def test_search_and_branch_and_bound_match_enumeration_on_a_larger_lattice(monkeypatch):
    space, lattice = _resnet_lattice("0.25x,0.5x,0.75x,1x")  # 6 variables, 4096 points
    budgets = Budgets(params=int(0.3 * space.params()), macs=int(0.4 * space.macs()))
    enum = best_point(space, budgets, lattice)
    dp = best_point(space, budgets, lattice, enumerate_limit=0, time_limit=60)
    assert dp.exact and dp.objective == pytest.approx(enum.objective, abs=1e-7)
    _check(space, lattice, budgets, dp)
    assert count(space.realize(dp.widths), SMALL) == (
        space.params(dp.widths),
        space.macs(dp.widths),
    )
    # where no elimination order keeps its tables small, products relax and branch and bound
    # (with the relaxed Lagrangian bound) searches instead: still exact
    monkeypatch.setattr(_maxsum, "TABLE_LIMIT", 4)
    tree = best_point(space, budgets, lattice, enumerate_limit=0, leaf_limit=16, time_limit=60)
    assert tree.method == "branch and bound" and tree.exact
    assert tree.objective == pytest.approx(enum.objective, abs=1e-7)
    _check(space, lattice, budgets, tree)


def test_time_limit_returns_the_best_found_with_its_gap():
    space, lattice = _resnet_lattice("0.25x,0.5x,0.75x,1x")
    budgets = Budgets(macs=int(0.4 * space.macs()))
    exact = best_point(space, budgets, lattice)
    quick = best_point(space, budgets, lattice, enumerate_limit=0, time_limit=0.0)
    assert not quick.exact and quick.status == "best found" and "time limit" in quick.note
    _check(space, lattice, budgets, quick)
    assert quick.objective <= exact.objective + 1e-9
    assert quick.bound >= exact.objective - 1e-6  # the gap is to a true upper bound
    assert json.loads(json.dumps(quick.to_dict()))["status"] == "best found"


def test_a_gap_tolerance_certifies_instead_of_proving():
    space, lattice = _resnet_lattice("0.25x,0.5x,0.75x,1x")
    budgets = Budgets(params=int(0.35 * space.params()))
    exact = best_point(space, budgets, lattice)
    loose = best_point(space, budgets, lattice, enumerate_limit=0, gap_tolerance=0.5)
    assert loose.status in ("exact", "certified") and loose.complete
    assert loose.gap <= 0.5 + 1e-9 and loose.objective >= exact.objective - 0.5 - 1e-9
    assert loose.bound >= exact.objective - 1e-9
    _check(space, lattice, budgets, loose)


@pytest.mark.parametrize("net", ["resnet", "mobilenet"])
def test_the_best_k_points_in_order_equal_brute_force(net):
    """The k best points under the budgets, best first, distinct, each exact, by enumeration
    and by the search, against every point counted on the exact cost model."""
    space, lattice = _resnet_lattice() if net == "resnet" else _mobilenet_lattice()
    points = _points(space, lattice)
    rng = np.random.default_rng(3)
    lo_p, hi_p = min(x[0] for x in points), max(x[0] for x in points)
    lo_m, hi_m = min(x[1] for x in points), max(x[1] for x in points)
    for k in (5, 32):
        budgets = Budgets(
            params=int(lo_p + rng.uniform(0.3, 0.7) * (hi_p - lo_p)),
            macs=int(lo_m + rng.uniform(0.3, 0.7) * (hi_m - lo_m)) if k == 5 else None,
        )
        truth = _top(points, budgets, k)
        for limit in (10**5, 0):
            picks = best_points(space, budgets, lattice, k=k, enumerate_limit=limit)
            assert [p.rank for p in picks] == list(range(1, len(truth) + 1))
            assert [p.objective for p in picks] == pytest.approx(truth, abs=1e-7)
            assert len({p.widths for p in picks}) == len(picks)
            assert all(p.exact for p in picks)
            for pick in picks:
                _check(space, lattice, budgets, pick)
    with pytest.raises(SolverError, match="at least one"):
        best_points(space, budgets, lattice, k=0)


def test_a_lattice_of_forty_variables_is_searched_without_a_grid_of_them():
    """efficientnet_b0's 40 free groups each on a grid: numpy's grids stop at 32 dimensions,
    which made this a traceback; now the pick is on the grid, within budget, and exact."""
    space = zoo_space("efficientnet_b0")
    lattice = GridSpec.parse("0.5x,0.75x,1x,1.25x,1.5x").resolve(
        space, min_width=0.1, max_width=2.0
    )
    assert len(lattice.classes) == 40
    for budgets in (Budgets(macs=space.macs()), Budgets(params=int(0.8 * space.params()))):
        pick = best_point(space, budgets, lattice)
        _check(space, lattice, budgets, pick)
        assert pick.exact and pick.method == "dynamic programming"
    # enumeration of a sub-lattice: only the variables with more than one value vary
    few = GridSpec.parse("1x", groups={"blocks.[12]*": "0.5x,1x"}).resolve(
        space, min_width=0.1, max_width=2.0
    )
    budgets = Budgets(macs=int(0.9 * space.macs()))
    enum = best_point(space, budgets, few)
    assert enum.method == "enumeration" and enum.exact
    assert enum.objective == pytest.approx(
        best_point(space, budgets, few, enumerate_limit=0).objective, abs=1e-9
    )


def test_a_separable_score_plugs_in():
    """Another objective (here: the sum of log widths, unweighted) is searched exactly too."""
    space, lattice = _resnet_lattice()
    budgets = Budgets(macs=int(0.35 * space.macs()))
    free = {g.id for g in space.free_groups}

    def score(group, widths):
        return np.log(widths / group.width)

    def total(widths):
        return sum(math.log(widths[g] / space.groups[g].width) for g in free)

    truth = _brute(_points(space, lattice, total), budgets)
    for limit in (10**5, 0):
        pick = best_point(space, budgets, lattice, score=score, enumerate_limit=limit)
        assert pick.exact and pick.objective == pytest.approx(truth, abs=1e-9)
        assert lattice.contains(pick.widths) and space.macs(pick.widths) <= budgets.macs
    weights = [1.0 if g.id in free else 0.0 for g in space.groups]
    assert best_point(space, budgets, lattice, weights=weights).objective == pytest.approx(truth)


def test_infeasible_and_loose_budgets():
    space, lattice = _resnet_lattice()
    with pytest.raises(InfeasibleBudgetError, match="smallest widths on the grid"):
        best_point(space, Budgets(macs=space.macs() // 50), lattice)
    top = best_point(space, Budgets(macs=space.macs()), lattice)
    assert top.widths == space.base_widths and top.exact


def test_reconfigure_on_a_grid_with_ties_and_its_uniform_control():
    space = zoo_space("resnet18")
    budget = int(0.5 * space.macs())
    result = reconfigure(
        space,
        macs=budget,
        mode="precrop",
        choices="0.25x,0.5x,0.75x,1x",
        tie=["layer4.*"],
        baselines=["uniform"],
    )
    lattice = result.grid.resolve(space, min_width=0.25, max_width=1.0)
    assert lattice.contains(result.widths) and result.macs <= budget
    assert result.lattice is not None and result.lattice.exact
    assert len({result.widths[g] for g in (10, 11, 12)}) == 1
    info = result.to_dict()
    assert info["grid"]["choices"] == "0.25x,0.5x,0.75x,1x" and info["lattice"]["exact"]
    uniform = result.baselines[0]
    assert uniform.widths is not None and lattice.contains(uniform.widths)
    ratios = {w / g.width for g, w in zip(space.groups, uniform.widths, strict=True) if not g.fixed}
    assert len(ratios) == 1 and uniform.macs <= budget
    bigger = ratios.pop() + 0.25
    wider = [g.width if g.fixed else round(bigger * g.width) for g in space.groups]
    assert bigger > 1 or space.macs(wider) > budget  # the largest equal multiplier that fits
    assert uniform.log_synexp <= result.log_synexp_gain
    direct = uniform_lattice(space, result.budgets, lattice)
    assert direct.widths == uniform.widths
