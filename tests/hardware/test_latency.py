"""The latency model: its terms, the fit, profiles on disk, and refusal on another device."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.conftest import MECHANISMS, TINY, mechanism_space, random_widths, zoo_space
from widthsearch.cli import main
from widthsearch.hardware import (
    FEATURES,
    Profile,
    ProfileError,
    cache_path,
    current_device,
    feature_values,
    fit_coefficients,
    latency_features,
    resolve_latency_model,
    sample_widths,
)
from widthsearch.solve import WEIGHT_KINDS, solved_widths


@pytest.mark.parametrize(
    "name", ["efficientnet_b0", "resnext50_32x4d", "densenet121", *sorted(MECHANISMS)]
)
def test_compute_terms_add_up_to_macs_and_params(name):
    space = mechanism_space(name) if name in MECHANISMS else zoo_space(name)
    feats = latency_features(space)
    assert set(feats) == set(FEATURES)
    for widths in (space.base_widths, random_widths(space, 3)):
        macs = sum(feats[f](widths) for f in FEATURES if f.startswith("macs_"))
        assert macs == space.macs(widths)
        weights = sum(lay.param_cost()(widths) for lay in space.layers if lay.kind in WEIGHT_KINDS)
        assert feats["weights"](widths) == weights
        # traffic grows with every free width, and the op count does not
        assert feats["elems_other"](widths) > 0
    assert feats["ops"].terms and all(m == () for m, _ in feats["ops"].terms)
    if name == "efficientnet_b0":
        assert feats["macs_depthwise"](space.base_widths) > 0
        assert feats["elems_depthwise"](space.base_widths) > 0
    if name == "resnext50_32x4d":
        assert feats["macs_grouped"](space.base_widths) > 0


def test_fit_recovers_non_negative_coefficients():
    import random

    rng = random.Random(0)
    truth = [2.0, 0.0, 0.5, 3.0]
    rows = [[rng.uniform(0.1, 2) for _ in truth] for _ in range(30)]
    ms = [sum(c * v for c, v in zip(truth, r, strict=True)) for r in rows]
    assert fit_coefficients(rows, ms) == pytest.approx(truth, abs=1e-6)
    # a term that would need a negative coefficient gets zero instead
    ms_neg = [m - 0.4 * r[1] + 2.0 for m, r in zip(ms, rows, strict=True)]
    assert min(fit_coefficients(rows, ms_neg)) >= 0


def test_sampled_widths_are_valid_and_varied(tiny_space):
    widths = sample_widths(tiny_space, 10, solved_widths=solved_widths)
    assert widths[0] == tiny_space.base_widths
    assert len(set(widths)) == 10
    for w in widths:
        assert tiny_space.widths(w) == tuple(w)


def test_profile_round_trips_and_predicts(tmp_path, tiny_space, tiny_profile):
    path = tmp_path / "p.json"
    tiny_profile.save(path)
    loaded = Profile.load(path)
    assert loaded.to_dict() == json.loads(json.dumps(tiny_profile.to_dict()))
    fit = loaded.fits[0]
    assert fit.matches(tiny_space) and len(fit.samples) == 8
    assert all(s["ms"] > 0 for s in fit.samples)
    model = loaded.latency_model(tiny_space)
    for s in fit.samples:  # the posynomial is the fitted linear model, term by term
        row = feature_values(tiny_space, s["widths"])
        linear = sum(fit.coefficients[f] * v for f, v in zip(FEATURES, row, strict=True))
        assert model(s["widths"]) == pytest.approx(linear, rel=1e-9)
    assert "fitted to 8 width vectors" in model.source
    loaded.check(current_device("cpu", threads=1))  # the device it was made on: accepted


def test_profile_refused_on_another_device(tiny_profile):
    here = current_device("cpu", threads=1)
    for change in ({"threads": 2}, {"name": "another CPU"}, {"batch_size": 8}):
        with pytest.raises(ProfileError, match="another device or setting") as info:
            tiny_profile.check(dataclasses.replace(here, **change))
        assert len(str(info.value).splitlines()) == 1
    other = dataclasses.replace(tiny_profile, device=dataclasses.replace(here, type="cuda"))
    with pytest.raises(ProfileError, match="type cuda"):
        other.check(here)


def test_damaged_profiles_fail_with_one_line(tmp_path, tiny_profile):
    bad = tmp_path / "bad.json"
    for text in (
        "not json",
        json.dumps({"format": "x"}),
        json.dumps({**tiny_profile.to_dict(), "format_version": 99}),
    ):
        bad.write_text(text)
        with pytest.raises(ProfileError) as info:
            Profile.load(bad)
        assert len(str(info.value).splitlines()) == 1
    with pytest.raises(ProfileError, match="no latency profile"):
        Profile.load(tmp_path / "missing.json")


def test_quick_profile_is_cached(tmp_path, monkeypatch, tiny_space):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    quick = {"threads": 1, "seconds": 2, "samples": 6, "solved_widths": solved_widths}
    first = resolve_latency_model(tiny_space, **quick)
    assert "quick profile was made" in first.note
    path = cache_path(tiny_space, current_device("cpu", threads=1))
    assert path.is_relative_to(tmp_path) and path.exists()
    second = resolve_latency_model(tiny_space, **quick)
    assert "cached quick profile" in second.note
    assert second.model(tiny_space.base_widths) == first.model(tiny_space.base_widths)


@pytest.mark.slow
def test_profile_cli_writes_a_profile_and_refuses_a_mismatch(tmp_path, capsys):
    out = tmp_path / "p.json"
    args = ["profile", TINY, "--input-size", "3,64,64", "--threads", "1", "--samples", "6"]
    assert main([*args, "--seconds", "2", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{TINY}  3x64x64" in text and f"wrote {out}" in text
    profile = Profile.load(out)
    assert profile.device.threads == 1 and len(profile.fits[0].samples) == 6

    # bench with it: predicted and measured, memory exact; on another setting: refused
    widths = tmp_path / "w.json"
    reconfig = ["reconfig", TINY, "--input-size", "3,64,64", "--same-flops", "--baselines", "none"]
    assert main([*reconfig, "-o", str(widths)]) == 0
    capsys.readouterr()
    bench = ["bench", str(widths), "--profile", str(out), "--runs", "20"]
    assert main([*bench, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("predicted_ms", "measured_ms", "base_predicted_ms", "base_measured_ms"):
        assert info[key] > 0
    assert info["memory_bytes"] == info["measured_memory_bytes"] > 0
    assert info["base_memory_bytes"] == info["base_measured_memory_bytes"] > 0
    assert info["peak_memory_bytes"] == info["measured_peak_memory_bytes"] > 0  # the registry's
    assert info["device"]["threads"] == 1  # the profile's setting, pinned
    assert main([*bench]) == 0
    text = capsys.readouterr().out
    assert "predicted ms" in text and "ratio" in text and "fitted to 6 width vectors" in text
    assert "peak memory" in text and "train memory" in text

    for extra, message in (
        (["--threads", "2"], "another device or setting: threads 1 (here 2)"),
        (["--batch-size", "4"], "batch_size 1 (here 4)"),
        (["--runs", "5"], "--runs must be at least 20"),
    ):
        assert main([*bench, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert main(["bench", str(widths), "--profile", str(tmp_path / "none.json")]) == 2
    assert "no latency profile at" in capsys.readouterr().err


def test_others_busy_reads_the_machine_and_leaves_out_this_process() -> None:
    """The real /proc/stat reading: this process's own spinning is not counted as load, and
    the reading is a load the machine can have, whatever else is running."""
    import os
    import time

    from widthsearch.hardware.timing import others_busy

    with others_busy() as load:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:  # this process keeps one core busy
            pass
    assert load.cores is not None and 0.0 <= load.cores <= (os.cpu_count() or 1)
