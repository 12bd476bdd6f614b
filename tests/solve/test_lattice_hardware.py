"""The lattice search under latency and memory budgets: a fitted latency model (float
coefficients, held with its margin) and exact activation memory, with MACs and alone (a graph
in many parts), through the Lagrangian dynamic program against enumeration; and other
objectives than SynExp's."""

from __future__ import annotations

import numpy as np
import pytest

from widthsearch.hardware.memory import activation_memory
from widthsearch.solve import Budgets, best_point, best_points
from widthsearch.solve._lattice_model import LatticeModel, product_rows
from widthsearch.solve._maxsum import MaxSum
from widthsearch.solve.program import objective_exponents
from widthsearch.space.choices import GridSpec


@pytest.fixture(scope="module")
def latency_model(tiny_space, fixed_profile):
    return fixed_profile.latency_model(tiny_space)


def _lattice(space):
    spec = GridSpec.parse("1x", groups={"blocks.[12]*": "0.5x,0.75x,1x", "conv_head": "0.5x,1x"})
    return spec.resolve(space, min_width=0.1, max_width=1.0)


@pytest.mark.parametrize("tight", [0.85, 0.92])
def test_latency_and_memory_budgets_on_a_lattice(tiny_space, latency_model, tight):
    space = tiny_space
    memory = activation_memory(space)
    lattice = _lattice(space)
    assert 1_000 < lattice.size <= 100_000
    costs = {"latency": latency_model.cost, "memory": memory.cost}
    budgets = Budgets(
        macs=space.macs(),
        latency=tight * latency_model(space.base_widths),
        memory=int(tight * memory(space.base_widths)),
    )
    enum = best_points(space, budgets, lattice, costs=costs, k=4)
    dp = best_points(space, budgets, lattice, costs=costs, k=4, enumerate_limit=0)
    assert [p.objective for p in dp] == pytest.approx([p.objective for p in enum], abs=1e-9)
    assert dp[0].widths != space.base_widths  # the budgets bind
    for pick in (*enum, *dp):
        assert pick.exact and lattice.contains(pick.widths)
        assert latency_model(pick.widths) <= budgets.latency
        assert memory(pick.widths) <= budgets.memory
        assert space.macs(pick.widths) <= budgets.macs


def test_another_separable_objective_is_searched_exactly(tiny_space):
    """A score with a term that is not a log (as the objectives of ``--objective`` have):
    the Lagrangian bound and the passes need no relaxation."""
    space = tiny_space
    lattice = _lattice(space)

    def score(group, widths):
        return 0.7 * np.log(widths / group.width) - 3.0 / widths

    budgets = Budgets(params=int(0.7 * space.params()))
    enum = best_point(space, budgets, lattice, score=score)
    dp = best_point(space, budgets, lattice, score=score, enumerate_limit=0)
    assert dp.exact and dp.relaxed is None
    assert dp.objective == pytest.approx(enum.objective, abs=1e-9)
    assert space.params(dp.widths) <= budgets.params


def test_a_memory_budget_alone_leaves_every_variable_its_own_part(tiny_space):
    """Activation memory is linear in the widths: with it alone no two variables share a cost
    term, the graph falls apart into one part per variable, and each part's bound must count
    the best of all the others (its max-marginals too)."""
    space = tiny_space
    memory = activation_memory(space)
    lattice = _lattice(space)
    budgets = Budgets(memory=int(0.9 * memory(space.base_widths)))
    costs = {"memory": memory.cost}
    enum = best_points(space, budgets, lattice, costs=costs, k=3)
    dp = best_points(space, budgets, lattice, costs=costs, k=3, enumerate_limit=0)
    assert [p.objective for p in dp] == pytest.approx([p.objective for p in enum], abs=1e-9)
    assert all(p.exact for p in dp) and dp[0].widths != space.base_widths

    exps = objective_exponents(space)
    model = LatticeModel(
        space, lattice, budgets, costs, [exps.get(g.id, 0.0) for g in space.groups], None
    )
    plan = MaxSum.of(model)
    assert sum(1 for s in plan.steps if not s.sub and len(s.scope) == 1) > 1
    masks = [np.ones(len(v), dtype=bool) for v in model.values]
    lam = np.array([[30.0 / float(model.costs[0].limit)]])
    solved = plan.solve(lam, masks, marginals=True)
    idx = product_rows([np.arange(len(v)) for v in model.values], 0, lattice.size)
    inner = (
        model.objective(idx) - (model.costs[0](model.points(idx)) - model.costs[0].c0) * lam[0, 0]
    )
    assert solved.value[0] == pytest.approx(inner.max(), abs=1e-9)
    for j in range(model.n):
        best = np.full(len(model.values[j]), -np.inf)
        np.maximum.at(best, idx[:, j], inner)
        assert solved.marginals[j][0] == pytest.approx(best, abs=1e-9)
