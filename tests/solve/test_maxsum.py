"""The pieces of the lattice search against brute force on real timm models: the inner problem
of the Lagrangian solved exactly by variable elimination (DenseNet's concatenations through
sum variables), its max-marginals, the Lagrangian bound never below the best lattice point,
the pass that lists every point above a threshold, and the dominance between partial points."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.conftest import zoo_space
from widthsearch.solve import Budgets, _maxsum
from widthsearch.solve._core import _dominated_large, _reduce, points_above, prepare
from widthsearch.solve._lagrange import Dual
from widthsearch.solve._lattice_model import LatticeModel, product_rows
from widthsearch.solve._maxsum import MaxSum
from widthsearch.solve.program import objective_exponents
from widthsearch.space.choices import GridSpec


def _model(name, choices, budgets=None, ties=()):
    space = zoo_space(name)
    lattice = GridSpec.parse(choices, list(ties)).resolve(space, min_width=0.1, max_width=2.0)
    exps = objective_exponents(space)
    weights = [exps.get(g.id, 0.0) for g in space.groups]
    budgets = budgets or Budgets(params=space.params() // 2, macs=space.macs() // 2)
    return LatticeModel(space, lattice, budgets, None, weights, None)


def _brute(model, masks):
    """Every point of the product of the masks: value indices, objective, costs (scaled)."""
    idx = product_rows([np.nonzero(m)[0] for m in masks], 0, int(np.prod([m.sum() for m in masks])))
    pts = model.points(idx)
    costs = np.stack([c(pts) - float(c.c0) for c in model.costs], axis=1)
    return idx, model.objective(idx), costs


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenetv2_100", "efficientnet_b0", "densenet121", "regnetx_002"]
)
def test_the_inner_problem_and_its_max_marginals_are_exact(name):
    """With eight variables left free (the others masked to one random value), the value, the
    decoded maximizer and every max-marginal equal brute force, for random multipliers."""
    model = _model(name, "0.5x,0.75x,1x,1.25x")
    plan = MaxSum.of(model)
    assert plan.problem.relaxed == 0
    if name == "densenet121":  # its concatenations became sums: treewidth 2, exact
        assert plan.problem.additions
    limit = np.array([float(c.limit) for c in model.costs])
    rng = np.random.default_rng(7)
    for _ in range(3):
        free = set(rng.choice(model.n, size=8, replace=False).tolist())
        masks = []
        for j, v in enumerate(model.values):
            m = np.zeros(len(v), dtype=bool)
            if j in free:
                m[:] = True
            else:
                m[rng.integers(len(v))] = True
            masks.append(m)
        lams = rng.uniform(0, 40, size=(3, len(limit)))
        solved = plan.solve(lams / limit, masks, marginals=True)
        idx, obj, costs = _brute(model, masks)
        for r in range(3):
            inner = obj - costs @ (lams[r] / limit)
            assert solved.value[r] == pytest.approx(inner.max(), abs=1e-9)
            at = np.flatnonzero((idx == solved.index[r, : model.n]).all(axis=1))
            assert len(at) == 1 and inner[at[0]] == pytest.approx(inner.max(), abs=1e-9)
            for j in free:
                best = np.full(len(model.values[j]), -np.inf)
                np.maximum.at(best, idx[:, j], inner)
                assert solved.marginals[j][r] == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("relax", [False, True])
def test_the_lagrangian_bound_is_never_below_the_best_point(relax, monkeypatch):
    """For random budgets (params, MACs, both), min over the multipliers, and every multiplier
    on the way, bounds the best fitting point from above; with products relaxed to their log
    tangents (a plan that would not fit the table limit) too."""
    if relax:
        monkeypatch.setattr(_maxsum, "TABLE_LIMIT", 4)
    space = zoo_space("resnet18")
    ties = ["layer2.*", "layer3.*", "layer4.*"]
    lattice = GridSpec.parse("0.25x,0.5x,0.75x,1x", ties).resolve(space, min_width=0.1, max_width=1)
    low = [v[0] for v in lattice.grid]
    rng = np.random.default_rng(11)
    for kind in ("params", "macs", "both", "params", "macs", "both"):
        p = int(rng.uniform(space.params(low), space.params()))
        m = int(rng.uniform(space.macs(low), space.macs()))
        budgets = Budgets(
            params=p if kind != "macs" else None, macs=m if kind != "params" else None
        )
        model = _model("resnet18", "0.25x,0.5x,0.75x,1x", budgets, ties)
        full = [np.ones(len(v), dtype=bool) for v in model.values]
        idx, obj, _ = _brute(model, full)
        truth = obj[model.fits(idx)].max()
        plan = MaxSum.of(model)
        assert (plan.problem.relaxed > 0) == relax
        dual = Dual(model, plan)
        bound = dual.minimize(full, None, target=-np.inf, rounds=30)
        assert bound.value >= truth - 1e-9
        lams = rng.uniform(0, 60, size=(8, len(model.costs)))
        values, _, _ = dual.evaluate(lams, full)
        assert (values >= truth - 1e-9).all()


def test_a_pass_lists_every_fitting_point_above_its_threshold():
    """Without merging (k > 1), a pass returns exactly the fitting points above the threshold,
    best first, whatever multipliers it prunes with."""
    model = _model("resnet18", "0.25x,0.5x,0.75x,1x", ties=["layer2.*", "layer3.*", "layer4.*"])
    full = [np.ones(len(v), dtype=bool) for v in model.values]
    idx, obj, _ = _brute(model, full)
    fit = model.fits(idx)
    plan = MaxSum.of(model)
    dual = Dual(model, plan)
    root = dual.minimize(full, None, target=-np.inf, rounds=30)
    rows = np.array([root.lam * f for f in (1.0, 0.5, 2.0)])
    prepared = prepare(model, plan, full, rows)
    best = np.sort(obj[fit])[::-1]
    for threshold in (best[0] - 1e-3, best[min(5, len(best) - 1)], best[min(40, len(best) - 1)]):
        above = points_above(model, plan, prepared, threshold, k=10**6, deadline=1e12)
        assert above.complete
        want = np.sort(obj[fit & (obj > threshold - 1e-9)])[::-1]
        assert [o for _, o in above.points] == pytest.approx(list(want), abs=1e-9)
        for point, o in above.points:
            assert model.fits(point[None, :])[0]
            assert model.objective(point[None, :])[0] == pytest.approx(o, abs=1e-9)


def test_dominance_drops_exactly_the_dominated_states():
    """Against a pairwise check: a state goes when another of its separator value costs no
    more in every budget and gains at least as much (of equal states, one stays)."""
    rng = np.random.default_rng(5)
    for n, k in [(40, 1), (300, 2), (3000, 2), (200, 1)]:
        cost = rng.integers(0, 30, size=(n, k)).astype(float)
        obj = np.round(rng.normal(size=n), 1)
        sep = rng.integers(0, 3, size=n)
        kept = _reduce(sep, cost, obj, 1)
        for s in range(3):
            mine = np.flatnonzero(sep == s)
            undominated = set()
            for i in mine:
                if not any(
                    (cost[j] <= cost[i]).all()
                    and obj[j] >= obj[i]
                    and ((cost[j] < cost[i]).any() or obj[j] > obj[i] or j < i)
                    for j in mine
                    if j != i
                ):
                    undominated.add((tuple(cost[i]), obj[i]))
            got = {(tuple(cost[i]), obj[i]) for i in kept if sep[i] == s}
            assert got == undominated
            assert len([i for i in kept if sep[i] == s]) == len(undominated)
        assert not _dominated_large(cost[:1], obj[:1]).any()


def test_for_the_best_k_equal_states_stay_k_times_and_k_dominators_drop_one():
    """With k > 1: of equal states (separator value, costs, objective) at most k stay; with one
    budget, exactly the states that fewer than k others of their separator value dominate."""
    rng = np.random.default_rng(8)
    for n, budgets, k in [(40, 1, 3), (600, 1, 5), (2500, 1, 32), (500, 2, 4)]:
        cost = rng.integers(0, 15, size=(n, budgets)).astype(float)
        obj = np.round(rng.normal(size=n), 1)
        sep = rng.integers(0, 4, size=n)
        kept = _reduce(sep, cost, obj, k)
        key = [(sep[i], tuple(cost[i]), obj[i]) for i in range(n)]
        got = Counter(key[i] for i in kept)
        if budgets == 2:
            assert got == Counter({c: min(m, k) for c, m in Counter(key).items()})
            continue
        want = Counter()
        for i in range(n):
            dominators = sum(
                1
                for j in range(n)
                if j != i
                and sep[j] == sep[i]
                and cost[j, 0] <= cost[i, 0]
                and obj[j] >= obj[i]
                and (cost[j, 0] < cost[i, 0] or obj[j] > obj[i] or j < i)
            )
            if dominators < k:
                want[key[i]] += 1
        assert got == want
