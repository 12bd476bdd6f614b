"""The best lattice point, exactly: enumeration and branch and bound against brute force on
small lattices of real timm models (real cvxpy solves of the root relaxation), picks on the
grid and within every budget, the rounding fallback with its gap, and the public API."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tests.conftest import SMALL, count, zoo_space
from widthsearch.errors import InfeasibleBudgetError
from widthsearch.solve import Budgets, best_point, log_synexp, reconfigure, uniform_lattice
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


@pytest.mark.slow
@pytest.mark.parametrize("net", ["resnet", "mobilenet"])
def test_enumeration_and_branch_and_bound_equal_brute_force(net):
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
        tree = best_point(space, budgets, lattice, enumerate_limit=0, leaf_limit=8, time_limit=60)
        assert enum.method == "enumeration" and tree.method == "branch and bound"
        assert enum.exact and tree.exact and tree.nodes >= 1
        for pick in (enum, tree):
            _check(space, lattice, budgets, pick)
            assert pick.objective == pytest.approx(truth, abs=1e-7)
        # the relaxation bounds every lattice point from above
        assert enum.relaxed_objective is not None and enum.relaxed_objective >= truth - 1e-6


@pytest.mark.slow
def test_branch_and_bound_matches_enumeration_on_a_larger_lattice():
    space, lattice = _resnet_lattice("0.25x,0.5x,0.75x,1x")  # 6 variables, 4096 points
    budgets = Budgets(params=int(0.3 * space.params()), macs=int(0.4 * space.macs()))
    enum = best_point(space, budgets, lattice)
    tree = best_point(space, budgets, lattice, enumerate_limit=0, leaf_limit=16, time_limit=60)
    assert tree.exact and tree.objective == pytest.approx(enum.objective, abs=1e-7)
    _check(space, lattice, budgets, tree)
    assert count(space.realize(tree.widths), SMALL) == (
        space.params(tree.widths),
        space.macs(tree.widths),
    )


def test_time_limit_falls_back_to_rounding_with_its_gap():
    space, lattice = _resnet_lattice("0.25x,0.5x,0.75x,1x")
    budgets = Budgets(macs=int(0.4 * space.macs()))
    exact = best_point(space, budgets, lattice)
    quick = best_point(space, budgets, lattice, enumerate_limit=0, leaf_limit=1, time_limit=0.0)
    assert not quick.exact and quick.method == "rounding" and quick.note
    _check(space, lattice, budgets, quick)
    assert quick.objective <= exact.objective + 1e-9
    assert quick.bound >= exact.objective - 1e-6  # the gap is to a true upper bound


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
