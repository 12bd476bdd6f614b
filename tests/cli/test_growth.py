"""Item 6 of issue 27: an unbudgeted cost that grows is said out loud, with the flag that holds
it (a params budget alone lets resnet50's MACs grow 1.73x at 224x224)."""

from __future__ import annotations

import json

from tests.conftest import zoo_space
from widthsearch.cli import main
from widthsearch.solve import reconfigure


def test_a_params_only_budget_that_grows_macs_says_so_with_the_flag(capsys):
    assert (
        main(
            [
                "reconfig",
                "resnet50",
                "--input-size",
                "3,64,64",
                "--params",
                "0.5",
                "--baselines",
                "none",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("note: MACs grew to"))
    ratio = float(line.split("grew to ")[1].split("x")[0])
    assert ratio > 1.2
    assert "--same-flops" in line
    assert (
        main(
            [
                "reconfig",
                "resnet50",
                "--input-size",
                "3,64,64",
                "--params",
                "0.5",
                "--same-flops",
                "--baselines",
                "none",
            ]
        )
        == 0
    )
    assert "grew to" not in capsys.readouterr().out


def test_unbudgeted_growth_is_in_the_api_and_the_json():
    space = zoo_space("resnet50")
    result = reconfigure(space, params=space.params() // 2)
    growth = result.unbudgeted_growth()
    assert set(growth) == {"macs"}
    assert growth["macs"] == result.macs / result.base_macs > 1.2
    assert result.to_dict()["unbudgeted_growth"] == growth
    held = reconfigure(space, params=space.params() // 2, macs=space.macs())
    assert held.unbudgeted_growth() == {}
    assert json.loads(json.dumps(held.to_dict()))["unbudgeted_growth"] == {}
