"""The ground-truth benchmark's networks against the Channel-Bench-Macro tables, and its picks.

Skipped where the tables are absent (they are read from the shared data folder, never copied).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import groundtruth as gt  # noqa: E402

DATA = gt.default_data()
pytestmark = pytest.mark.skipif(
    not (DATA / "Results_ResNet.json").is_file(), reason=f"no Channel-Bench-Macro tables in {DATA}"
)
NETS = ["ResNet", "MobileNet"]


@pytest.fixture(scope="module", params=NETS)
def net(request):
    name = request.param
    table = gt.load_table(DATA / f"Results_{name}.json", name)
    space, free = gt.parse(name)
    return table, space, free, gt.lattice(space, free, table.digits)


def test_widthsearch_counts_equal_the_table_at_every_code(net):
    table, space, free, widths = net
    assert len(table.codes) == 4**7
    assert np.array_equal(gt.evaluate(space.param_cost, widths), table.params)
    assert np.array_equal(gt.evaluate(space.mac_cost, widths), table.macs)
    factory, _ = gt.NETWORKS[table.name]
    for code in ("1111111", "2413342"):  # our own definition, realized and counted by torch
        model = factory(code=code).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
        i = table.index(code)
        assert sum(p.numel() for p in model.parameters()) == table.params[i]
        assert counter.get_total_flops() // 2 == table.macs[i]
        assert gt.widths_code(widths[i], space, free) == code


def test_synexp_weights_are_the_layers_touching_each_position(net):
    table, space, free, widths = net
    scores, info = gt.objective_scores(space, widths)
    expect = {"ResNet": [6, 2, 2, 2, 6, 2, 2], "MobileNet": [6, 3, 3, 3, 4, 3, 2]}[table.name]
    assert [info["synexp"]["log_weights"][g] for g in free] == expect
    assert gt.check_synexp(space, widths, scores) < 1e-9


def test_every_pick_is_on_the_table_and_within_its_budget(net):
    table, space, free, widths = net
    scores, info = gt.objective_scores(space, widths)
    bset = gt.budgets(table, space, free)
    assert len(bset) == 2 * gt.N_BUDGETS + len(gt.PRECONFIG)
    for b in bset:
        chosen, ties = gt.picks(table, b, scores, info)
        for name, i in chosen.items():
            assert i is not None and b.mask[i], (name, b.label)
            if name in scores:  # the exact argmax: nothing within the budget scores higher
                mask = b.held_mask if info[name]["hold"] and b.held_mask.any() else b.mask
                assert mask[i] and scores[name][i] >= scores[name][mask].max() - 1e-9
                assert i in ties[name]
        r = gt.row(table, b, chosen, ties, {"status": "skipped"})
        assert all(m["regret"] >= 0 for m in r["methods"].values() if "regret" in m)
        assert r["oracle"]["gain"] >= 0 and b.mask[b.uniform]


def test_tool_pick_is_on_the_table_and_within_budget_or_says_not_available(net):
    table, space, free, widths = net
    b = gt.budgets(table, space, free)[7]
    got = gt.tool_pick(space, free, table, b)
    if got["status"] == "not available":
        return
    assert got["status"] == "ok", got
    assert got["within"] and table.codes[table.index(got["code"])] == got["code"]


def test_the_best_k_route_ceiling_from_the_tables():
    """benchmarks/train_in_loop.py: K=1 is the tool's own pick (its regret the ground-truth
    benchmark's), and with the 3-seed mean as the measurement more candidates never hurt."""
    import train_in_loop as til

    res = til.run_network("MobileNet", DATA)
    for kind, row in res["rows"].items():
        assert row["one_seed"][1] == pytest.approx(row["three_seeds"][1])
        perfect = [row["three_seeds"][k] for k in til.KS]
        assert all(a >= b - 1e-12 for a, b in zip(perfect, perfect[1:], strict=False)), kind
        assert perfect[-1] < perfect[0]  # training the best 32 finds better than the proxy
