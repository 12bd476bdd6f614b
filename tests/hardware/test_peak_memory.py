"""Peak inference activation memory: the prediction equals the count on the realized model at
every width vector (the zoo, random widths), a budget on it holds on the realized model after
rounding and on a grid, and search, study files and width files take it from the registry."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import ZOO, random_widths, zoo_space
from widthsearch.cli import main
from widthsearch.hardware.peak_memory import peak_bytes, peak_memory
from widthsearch.models.widthfile import load_width_file
from widthsearch.solve import reconfigure
from widthsearch.solve.costs import COST_KINDS, cost_models


@pytest.mark.parametrize("name", ZOO)
def test_the_prediction_is_the_count_on_the_realized_model(name):
    space = zoo_space(name)
    example = torch.zeros(1, *space.input_size)
    model = peak_memory(space, activation_bytes=2)
    assert model(space.base_widths) == peak_bytes(space.realize(), example, 2) > 0
    for seed in range(2):
        widths = random_widths(space, seed)
        assert model(widths) == peak_bytes(space.realize(widths), example, 2)
    # the peak is one of its parts, each the bytes alive at one op
    assert 1 <= len(model.cost.parts) <= model.ops


def test_activation_bytes_scale_the_count_and_are_checked():
    space = zoo_space("mobilenetv2_100")
    one, four = peak_memory(space, activation_bytes=1), peak_memory(space, activation_bytes=4)
    assert four(space.base_widths) == 4 * one(space.base_widths)
    with pytest.raises(ValueError, match="activation_bytes must be 1, 2 or 4"):
        peak_memory(space, activation_bytes=3)


@pytest.mark.parametrize("choices", [None, "0.25x,0.5x,0.75x,1x"])
def test_a_peak_budget_holds_on_the_realized_model(choices):
    """PreConfig at the base's MACs under 60% of the base's peak: the realized model's count
    is within the budget (rounding and the lattice hold every part of the peak)."""
    space = zoo_space("mobilenetv2_100")
    models = cost_models(space, ["peak_memory"])
    budget = int(0.6 * models["peak_memory"](space.base_widths))
    result = reconfigure(
        space,
        macs=space.macs(),
        budgets={"peak_memory": budget},
        models=models,
        mode="precrop" if choices else "preconfig",
        choices=choices,
    )
    counted = peak_bytes(space.realize(result.widths), torch.zeros(1, *space.input_size))
    assert counted == result.value("peak_memory") <= budget
    assert result.to_dict()["budgets"]["peak_memory_bytes"] == budget


def test_reconfig_peak_memory_flag_json_and_width_file(capsys, tmp_path):
    out = tmp_path / "w.json"
    base = ["reconfig", "mobilenetv2_100", "--input-size", "3,64,64", "--same-flops"]
    peak = ["--peak-memory", "100KB", "--activation-bytes", "1"]
    assert main([*base, *peak, "--json", "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["budgets"]["peak_memory_bytes"] == 100_000
    assert 0 < info["peak_memory_bytes"] <= 100_000 < info["base_peak_memory_bytes"]
    wf = load_width_file(out)
    space = wf.space()
    assert (
        peak_bytes(space.realize(wf.widths), torch.zeros(1, 3, 64, 64), 1)
        == (info["peak_memory_bytes"])
    )
    assert wf.data["budgets"]["peak_memory_bytes"] == 100_000
    # the text output names it with its unit, and a size it cannot read is one line
    assert main([*base, *peak, "--baselines", "none"]) == 0
    text = capsys.readouterr().out
    assert "peak memory KB" in text and "inference pass at batch 1" in text
    assert main([*base, "--peak-memory", "3 parsecs"]) == 2
    assert "peak memory budget '3 parsecs' is neither" in capsys.readouterr().err


def test_search_and_study_files_take_the_peak_from_the_registry(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "mobilenetv2_100", "--input-size", "3,64,64", "--trials", "4"]
    args += ["--peak-memory", "0.5,0.9", "--macs", "0.5,1", "--params", "none"]
    assert main([*args, "--storage", db, "--json", "--seed", "0"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["base_peak_memory_bytes"] > 0 and info["front"]
    for t in info["front"]:
        assert t["peak_memory_ratio"] <= t["mix"]["peak_memory_ratio"] + 1e-12
    assert "peak_memory" in COST_KINDS
