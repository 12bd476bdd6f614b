"""Latency and memory budgets in the SynExp program: held after rounding, infeasible ones
refused before solving, and the reconfig command's options and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import TINY, TINY_SIZE
from widthsearch.cli import main
from widthsearch.errors import WidthSearchError
from widthsearch.hardware.memory import activation_memory
from widthsearch.hardware.memory_trace import saved_bytes
from widthsearch.solve.program import Budgets, InfeasibleBudgetError, SynExpProgram
from widthsearch.solve.reconfigure import parse_latency, parse_memory, reconfigure


@pytest.fixture(scope="module")
def latency_model(tiny_space, fixed_profile):
    return fixed_profile.latency_model(tiny_space)


def test_parse_latency_and_memory_budgets():
    assert parse_latency("0.9", 20.0) == pytest.approx(18.0)
    assert parse_latency("12ms", 20.0) == 12.0
    assert parse_latency("0.012 s", 20.0) == pytest.approx(12.0)
    assert parse_memory("0.5", 1000) == 500
    assert parse_memory("300MB", 1) == 300_000_000
    assert parse_memory("1GiB", 1) == 2**30
    for bad in ("fast", "12 parsecs", "-1", "0"):
        with pytest.raises(WidthSearchError, match="latency budget"):
            parse_latency(bad, 1.0)
        with pytest.raises(WidthSearchError, match="memory budget"):
            parse_memory(bad, 1)


@pytest.mark.parametrize("tight", [False, True])
def test_latency_and_memory_budgets_hold_after_rounding(tiny_space, latency_model, tight):
    space = tiny_space
    memory = activation_memory(space)
    base_ms, base_bytes = latency_model(space.base_widths), memory(space.base_widths)
    ratio = 1.0
    if tight:  # halfway between the smallest reachable latency and the base's
        program = SynExpProgram(space, latency=latency_model.cost)
        ratio = 0.5 + 0.5 * program.uniform_costs(0.1)["latency"] / base_ms
    result = reconfigure(
        space,
        macs=space.macs(),
        latency=ratio * base_ms,
        memory=int(ratio * base_bytes),
        latency_model=latency_model,
        memory_model=memory,
        baselines=("uniform",),
    )
    assert result.latency_ms == latency_model(result.widths) <= ratio * base_ms
    assert result.memory_bytes == memory(result.widths) <= int(ratio * base_bytes)
    assert result.macs <= space.macs()
    assert result.base_latency_ms == base_ms and result.base_memory_bytes == base_bytes
    # the memory figure is what autograd saves in the realized model
    model = space.realize(result.widths)
    assert saved_bytes(model, torch.randn(1, *TINY_SIZE))[0] == result.memory_bytes
    # the uniform baseline holds the same budgets
    (uni,) = result.baselines
    if uni.widths is not None:
        assert latency_model(uni.widths) <= ratio * base_ms
        assert memory(uni.widths) <= int(ratio * base_bytes)
    # a budget that binds: SynExp is lower than with MACs alone
    if ratio < 1:
        free = reconfigure(space, macs=space.macs(), baselines=())
        assert result.log_synexp_gain < free.log_synexp_gain
    info = result.to_dict()
    assert info["latency_ms"] == result.latency_ms and info["memory_bytes"] == result.memory_bytes
    assert info["budgets"]["latency_ratio"] == pytest.approx(ratio)
    assert info["latency_ratio"] == pytest.approx(result.latency_ms / base_ms)


def test_infeasible_latency_and_memory_fail_before_solving(tiny_space, latency_model):
    space = tiny_space
    memory = activation_memory(space)
    program = SynExpProgram(space, latency=latency_model.cost, memory=memory.cost)
    cases = (
        (Budgets(latency=0.01 * latency_model(space.base_widths)), r"latency 0\.01x \(.* ms\)"),
        (Budgets(memory=int(0.01 * memory(space.base_widths))), r"memory 0\.01x \(.* MB\)"),
    )
    for budgets, what in cases:
        with pytest.raises(InfeasibleBudgetError, match=what + r" is below the .* reachable"):
            program.solve(budgets, min_width=0.1, max_width=2.0)
    assert program.solves == 0
    with pytest.raises(WidthSearchError, match="needs a program built with a latency model"):
        SynExpProgram(space).solve(Budgets(latency=1.0), min_width=0.1, max_width=2.0)


def test_reconfig_cli_latency_and_memory(tmp_path, capsys, fixed_profile):
    profile = tmp_path / "p.json"
    fixed_profile.save(profile)
    args = ["reconfig", TINY, "--input-size", "3,64,64", "--profile", str(profile)]
    args += ["--baselines", "none"]
    assert main([*args, "--same-flops", "--same-latency", "--memory", "0.9", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latency_ms"] <= info["base_latency_ms"]
    assert info["memory_bytes"] <= 0.9 * info["base_memory_bytes"]
    assert info["macs"] <= info["base_macs"]
    assert "fitted to 8 width vectors" in info["latency_model"]
    assert main([*args, "--latency", "0.95", "--memory", "500MB"]) == 0
    out = capsys.readouterr().out
    assert "latency ms" in out and "memory MB" in out and "<= 0.95x" in out
    assert "latency: predicted ms per forward of a batch of 1" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--latency", "fast"], "latency budget 'fast' is neither a ratio"),
        (["--memory", "3 parsecs"], "memory budget '3 parsecs' is neither a ratio"),
        (["--latency", "0"], "latency budget '0' must be positive"),
        (["--same-latency", "--latency", "0.9"], "give --same-latency or --latency, not both"),
        (["--latency", "0.01"], "latency 0.01x"),
        (["--memory", "0.01"], "memory 0.01x"),
        (["--same-latency", "--threads", "2"], "another device or setting: threads 1 (here 2)"),
    ],
)
def test_reconfig_cli_bad_hardware_budgets_one_line(
    tmp_path, capsys, fixed_profile, extra, message
):
    profile = tmp_path / "p.json"
    fixed_profile.save(profile)
    out = tmp_path / "w.json"
    args = ["reconfig", TINY, "--input-size", "3,64,64", "--profile", str(profile), "-o", str(out)]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_reconfig_cli_missing_profile(tmp_path, capsys):
    args = ["reconfig", TINY, "--same-latency", "--profile", str(tmp_path / "none.json")]
    assert main(args) == 2
    assert "no latency profile at" in capsys.readouterr().err
