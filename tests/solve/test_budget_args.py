"""Item 5 of issue 27: Python budgets mean what the CLI's do, and API errors speak Python."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import zoo_space
from widthsearch import Ratio
from widthsearch.cli import main
from widthsearch.errors import InfeasibleBudgetError, WidthSearchError
from widthsearch.solve import reconfigure
from widthsearch.solve.budget import resolve_count


@pytest.mark.slow
def test_a_float_is_a_ratio_an_int_a_count_and_text_reads_as_on_the_cli(capsys):
    space = zoo_space("resnet18")
    half = math.floor(0.5 * space.params())
    results = [reconfigure(space, params=p) for p in (0.5, "0.5", Ratio(0.5), half)]
    assert {r.budgets.params for r in results} == {half}
    assert len({r.widths for r in results}) == 1
    # the CLI's --params 0.5 gives the very same widths
    assert (
        main(
            [
                "reconfig",
                "resnet18",
                "--input-size",
                "64",
                "--params",
                "0.5",
                "--json",
                "--baselines",
                "none",
            ]
        )
        == 0
    )
    cli = json.loads(capsys.readouterr().out)
    assert tuple(cli["widths"][str(i)] for i in range(len(space.groups))) == results[0].widths
    counted = reconfigure(space, params="4.2M", macs=Ratio(1))
    assert counted.budgets.params == 4_200_000 and counted.budgets.macs == space.macs()
    assert counted.params <= 4_200_000 and counted.macs <= space.macs()


def test_budget_mistakes_are_worded_for_python():
    space = zoo_space("resnet18")
    cases = [
        ({"params": 4.2e6}, "params=4200000.0 is a float, which reads as a ratio"),
        ({"params": True}, "params=True: give a count (an int), a ratio"),
        ({"macs": -0.5}, "macs=-0.5: a budget must be a positive number"),
        ({"macs": "lots"}, "budget 'lots' is neither a ratio (0.8) nor a count (4.2M)"),
        ({}, "give a budget: params=, macs=, latency= or memory="),
        ({"params": 0.5, "mode": "precrop", "max_width": 1.5}, "max_width must be at most 1"),
        ({"params": 0.5, "min_width": 0.6, "max_width": 0.5}, "0 < min_width (0.6) <= max_width"),
    ]
    for kwargs, message in cases:
        with pytest.raises(WidthSearchError) as err:
            reconfigure(space, **kwargs)
        assert message in str(err.value), str(err.value)
        assert "--" not in str(err.value), str(err.value)
    with pytest.raises(WidthSearchError, match="positive"):
        Ratio(0)
    assert resolve_count(4_200_000, 10, "params") == 4_200_000  # ints keep meaning counts


def test_an_infeasible_count_names_python_arguments_and_the_cli_its_flags(capsys):
    space = zoo_space("resnet18")
    with pytest.raises(InfeasibleBudgetError) as err:
        reconfigure(space, params=1000)
    text = str(err.value)
    assert "reachable with min_width=0.1" in text and "lower min_width or divisor" in text
    assert "--" not in text
    assert main(["reconfig", "resnet18", "--input-size", "64", "--params", "1K"]) == 2
    line = capsys.readouterr().err.strip()
    assert "reachable with --min-width=0.1" in line and "lower --min-width or --divisor" in line
