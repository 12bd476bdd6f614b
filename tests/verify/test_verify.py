"""Verification: data sets from disk, the training recipe, resumption, and the verify command."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import pickle
import re
import struct
import time

import numpy as np
import optuna
import pytest
import torch

from tests.conftest import count
from widthsearch import WidthSpace
from widthsearch.cli import main
from widthsearch.errors import WidthSearchError
from widthsearch.hardware import timing as timing_module
from widthsearch.models.native import build_spec
from widthsearch.search import widths_key
from widthsearch.train.data import DataError, load_dataset
from widthsearch.train.loop import Recipe, train
from widthsearch.verify import latency as verify_module
from widthsearch.verify.estimate import makespan
from widthsearch.verify.latency import latency_notes
from widthsearch.verify.plan import Candidate, training_setting, with_controls
from widthsearch.verify.verdict import LABELS

TINY = (3, 16, 16)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def tiny_space():
    return WidthSpace.from_timm("resnet18", input_size=TINY)


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(root, digits, gz: bool) -> None:
    root.mkdir(parents=True)
    parts = {
        "train-images-idx3-ubyte": digits.train.images[:, 0].numpy(),
        "train-labels-idx1-ubyte": digits.train.labels.numpy(),
        "t10k-images-idx3-ubyte": digits.val.images[:, 0].numpy(),
        "t10k-labels-idx1-ubyte": digits.val.labels.numpy(),
    }
    for name, array in parts.items():
        data = _idx(array)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)


def test_digits_are_real_and_split_the_same_way_every_time(digits):
    again = load_dataset("digits")
    assert (len(digits.train), len(digits.val), digits.num_classes) == (1438, 359, 10)
    assert torch.equal(digits.val.labels, again.val.labels)
    assert torch.equal(digits.train.images, again.train.images)
    assert digits.train.images.dtype == torch.uint8 and digits.train.images.shape[1:] == (1, 8, 8)
    assert set(digits.val.labels.tolist()) == set(range(10))


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_training_files_are_read_raw_or_gzipped_and_split(tmp_path, digits, gz):
    _write_mnist(tmp_path / "MNIST" / "raw", digits, gz)
    for test_file in (tmp_path / "MNIST" / "raw").glob("t10k*"):
        test_file.unlink()  # the test split is never read: validation is held out
    data = load_dataset(f"mnist:{tmp_path}")
    assert len(data.train) + len(data.val) == len(digits.train)
    assert len(data.val) == sum(round(0.1 * n) for n in digits.train.labels.bincount().tolist())
    seen = torch.cat([data.train.images, data.val.images]).flatten(1)
    assert sorted(map(tuple, seen.tolist())) == sorted(
        map(tuple, digits.train.images.flatten(1).tolist())
    )
    assert data.num_classes == 10


def test_cifar_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for kind, folder, names, key, classes in (
        ("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels", 10),
        ("cifar100", "cifar-100-python", ["train"], "fine_labels", 100),
    ):
        d = tmp_path / kind / folder
        d.mkdir(parents=True)
        for name in [*names, "test_batch" if kind == "cifar10" else "test"]:
            batch = {
                b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                key.encode(): rng.integers(0, classes, 20).tolist(),
            }
            (d / name).write_bytes(pickle.dumps(batch))
        (d / ("test_batch" if kind == "cifar10" else "test")).unlink()  # never read
        data = load_dataset(f"{kind}:{tmp_path / kind}")
        assert len(data.train) + len(data.val) == 20 * len(names)  # validation held out
        assert 0 < len(data.val) < len(data.train)
        assert data.train.images.shape[1:] == (3, 32, 32) and data.num_classes == classes


def test_image_folder_keeps_one_stored_size_and_resizes_mixed_sizes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(10):
            pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / c / f"{i}.png")
    data = load_dataset(f"imagefolder:{tmp_path}", (3, 24, 24))
    assert (len(data.train), len(data.val), data.num_classes) == (18, 2, 2)
    x, y = data.train[[0, 1, 2]]
    assert x.shape == (3, 3, 20, 30) and x.dtype == torch.uint8 and y.shape == (3,)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "cat/x.png")
    mixed = load_dataset(f"imagefolder:{tmp_path}", (3, 24, 24))
    assert mixed.train.images.shape[1:] == mixed.val.images.shape[1:] == (3, 24, 24)


def _corrupt(tmp_path, case: str) -> str:
    d = tmp_path / "data"
    d.mkdir()
    if case == "mnist-empty":
        return f"mnist:{d}"
    if case == "mnist-magic":
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            (d / name).write_bytes(b"\x00" * 64)
        for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (d / name).write_bytes(b"\x00" * 64)
        return f"mnist:{d}"
    if case == "mnist-truncated-gz":
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ):
            (d / f"{name}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 90)[:20])
        return f"mnist:{d}"
    if case.startswith("cifar"):
        content = b"not a pickle" if case == "cifar-not-pickle" else pickle.dumps(print)
        for name in ["test_batch", *(f"data_batch_{i}" for i in range(1, 6))]:
            (d / name).write_bytes(content)  # print: a global that is not a numpy constructor
        return f"cifar10:{d}"
    if case == "imagefolder-empty":
        (d / "a").mkdir()
        (d / "b").mkdir()
        return f"imagefolder:{d}"
    if case == "missing":
        return f"cifar100:{d / 'nope'}"
    return "svhn:/data"


@pytest.mark.parametrize(
    "case, match",
    [
        ("mnist-empty", "no train-images-idx3-ubyte"),
        ("mnist-magic", "is not an idx file"),
        ("mnist-truncated-gz", "cannot read"),
        ("cifar-not-pickle", "is not a CIFAR python batch"),
        ("cifar-hostile-pickle", "refusing to load builtins.print"),
        ("imagefolder-empty", "no images"),
        ("missing", "no folder or archive at"),
        ("unknown", "unknown data set"),
    ],
)
def test_bad_data_sets_are_one_clear_line(tmp_path, case, match):
    with pytest.raises(DataError, match=match) as err:
        load_dataset(_corrupt(tmp_path, case))
    assert "\n" not in str(err.value)


@pytest.fixture
def width_file(tmp_path, tiny_space):
    from widthsearch.models.widthfile import save_width_file
    from widthsearch.solve.reconfigure import reconfigure

    path = tmp_path / "w.json"
    result = reconfigure(tiny_space, params=tiny_space.params() // 2, baselines=())
    save_width_file(path, result, tiny_space)
    return path


def test_bad_data_on_the_command_line_exits_2_and_writes_nothing(tmp_path, capsys, width_file):
    wf = width_file
    out = tmp_path / "r.csv"
    code = main(["verify", str(wf), "--data", f"mnist:{tmp_path}", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("widthsearch: error:") and "\n" not in err
    assert not out.exists()


@pytest.mark.slow
def test_training_learns_and_an_interrupted_run_resumes_to_the_same_result(
    tmp_path, digits, tiny_space
):
    """Chance is 10%; the resumed run must reproduce the uninterrupted one exactly."""
    import widthsearch.space._portable as portable

    widths = [
        w if g.fixed else max(8, w // 4)
        for g, w in zip(tiny_space.groups, tiny_space.base_widths, strict=True)
    ]
    spec = build_spec(tiny_space, widths)

    def build():
        return portable.build(spec, num_classes=10)

    recipe = Recipe(epochs=3, batch_size=64, lr=3e-3)
    cpu = torch.device("cpu")
    whole = train(build, digits, TINY, recipe, 0, cpu, checkpoint=tmp_path / "a.pt")
    assert whole.epochs == 3 and whole.resumed_from == 0
    assert whole.top1 > 0.6, whole.history
    assert whole.history[-1]["val_loss"] < whole.history[0]["val_loss"]

    class Interrupt(Exception):
        pass

    def stop(epoch, step, steps, loss):
        if epoch == 1 and step == 5:  # in the middle of the second epoch
            raise Interrupt

    ckpt = tmp_path / "b.pt"
    with pytest.raises(Interrupt):
        train(build, digits, TINY, recipe, 0, cpu, checkpoint=ckpt, on_step=stop)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    resumed = train(build, digits, TINY, recipe, 0, cpu, checkpoint=ckpt)
    assert resumed.resumed_from == 1
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in whole.history]
    assert (resumed.top1, resumed.loss) == (whole.top1, whole.loss)


def test_control_holds_the_first_candidates_macs_and_folds_into_the_base(tiny_space):
    space = tiny_space
    half = [w if g.fixed else w // 2 for g, w in zip(space.groups, space.base_widths, strict=True)]
    cand = Candidate("half", "candidate", tuple(half), space.params(half), space.macs(half), 0.0)
    plan = with_controls(space, [cand], 8, "test")
    kinds = [c.kind for c in plan.candidates]
    assert kinds == ["candidate", "base", "control"]
    control = plan.candidates[2]
    assert control.macs <= cand.macs and control.macs > 0.9 * cand.macs
    ratios = {
        w / b
        for w, b, g in zip(control.widths, space.base_widths, space.groups, strict=True)
        if not g.fixed
    }
    assert max(ratios) - min(ratios) < 0.2  # one multiplier, up to rounding to multiples of 8
    # matched as trained: at another input size and class count the MACs ratio shifts
    setting = training_setting(space, (3, 32, 32), 10)
    plan = with_controls(space, [cand], 8, "test", setting=setting)
    control = plan.candidates[2]

    def as_trained(widths):
        return setting.macs(
            [
                b if g.fixed else w
                for g, w, b in zip(setting.groups, widths, setting.base_widths, strict=True)
            ]
        )

    assert as_trained(control.widths) <= as_trained(cand.widths)
    assert as_trained(control.widths) > 0.9 * as_trained(cand.widths)
    same = Candidate("same", "candidate", space.base_widths, space.params(), space.macs(), 0.0)
    plan = with_controls(space, [same], 8, "test")
    assert plan.candidates[2].widths == space.base_widths  # trained once, reported as the base
    assert plan.candidates[2].label == "uniform 1x"  # not the bisection's 1.0xx


def test_controls_can_match_the_candidates_params_instead_of_its_macs(tiny_space):
    """A params budget keeps the early, MACs-heavy layers and cuts the late, params-heavy ones:
    controls at its MACs hold more params than it has; matched on params they do not."""
    space = tiny_space
    free = [i for i, g in enumerate(space.groups) if not g.fixed]
    late = set(free[len(free) // 2 :])
    lopsided = tuple(
        max(8, w // 4 // 8 * 8) if i in late else w for i, w in enumerate(space.base_widths)
    )
    cand = Candidate("lop", "candidate", lopsided, space.params(lopsided), space.macs(lopsided), 0)
    by_macs = with_controls(space, [cand], 8, "test", random=2)
    by_params = with_controls(space, [cand], 8, "test", random=2, match="params")
    controls = [c for c in by_params.candidates if c.kind in ("control", "random")]
    assert [c.kind for c in controls] == ["control", "random", "random"]
    for c in controls:
        assert 0.8 * cand.params < c.params <= cand.params and c.macs < cand.macs
    assert all(
        c.params > cand.params for c in by_macs.candidates if c.kind in ("control", "random")
    )
    with pytest.raises(WidthSearchError, match="controls match macs or params, not 'flops'"):
        with_controls(space, [cand], 8, "test", match="flops")


def test_random_controls_are_uneven_shapes_on_the_grid_at_the_candidates_macs(tiny_space):
    from widthsearch.solve.baselines import random_widths
    from widthsearch.solve.program import Budgets
    from widthsearch.solve.rounding import width_grid

    space = tiny_space
    half = [w if g.fixed else w // 2 for g, w in zip(space.groups, space.base_widths, strict=True)]
    cand = Candidate("half", "candidate", tuple(half), space.params(half), space.macs(half), 0.0)
    plan = with_controls(space, [cand], 8, "test", random=3)
    randoms = [c for c in plan.candidates if c.kind == "random"]
    assert [c.label for c in randoms] == ["random 0", "random 1", "random 2"]
    assert len({c.widths for c in randoms}) == 3  # each seed its own shape
    for c in randoms:
        assert c.macs <= cand.macs and c.macs > 0.85 * cand.macs  # rescaled to the same MACs
        ratios = [w / g.width for g, w in zip(space.groups, c.widths, strict=True) if not g.fixed]
        assert max(ratios) / min(ratios) > 1.5  # not a uniform multiplier
        assert all(w % 8 == 0 for g, w in zip(space.groups, c.widths, strict=True) if not g.fixed)
        assert max(ratios) <= 1.0  # a PreCrop candidate's random shapes do not widen either
    again = with_controls(space, [cand], 8, "test", random=3)
    assert [c.widths for c in again.candidates] == [c.widths for c in plan.candidates]
    # a budget no shape reaches at its smallest scale is reported, not bent
    grid = width_grid(space, divisor=8, min_width=0.5, max_width=1.0)
    none = random_widths(space, Budgets(macs=1), grid, 0, min_width=0.5, max_width=1.0)
    assert none.widths is None and "no scale" in none.note


def test_candidates_are_compared_with_the_mean_of_the_random_controls_seed_by_seed():
    from widthsearch.verify.summary import add_verdicts

    def result(label, kind, top1):
        return {"candidate": label, "kind": kind, "seeds": [0, 1, 2], "top1_seeds": top1}

    results = [
        result("trial 1", "candidate", [0.80, 0.82, 0.81]),
        result("base", "base", [0.78, 0.80, 0.79]),
        result("uniform 0.5x", "control", [0.79, 0.80, 0.80]),
        result("random 0", "random", [0.70, 0.75, 0.72]),
        result("random 1", "random", [0.74, 0.73, 0.76]),
    ]
    add_verdicts(results, resolution=0.001)
    v = results[0]["vs_random"]
    assert v["reference"] == "random shapes (mean of 2)"
    assert v["differences"] == pytest.approx([0.08, 0.08, 0.07])
    assert v["label"] == "better"
    assert results[3]["vs_random"] is None and results[3]["vs_base"]["label"] == "worse"
    assert results[3]["vs_control"] is None


@pytest.mark.slow
def test_verify_a_study_prints_the_table_stores_results_and_skips_them_again(
    tmp_path, capsys, monkeypatch
):
    db = f"sqlite:///{tmp_path / 's.db'}"
    out = tmp_path / "r.csv"
    assert (
        main(
            [
                "search",
                "resnet18",
                "--input-size",
                "3,16,16",
                "--trials",
                "12",
                "--seed",
                "0",
                "--storage",
                db,
                "--json",
            ]
        )
        == 0
    )
    capsys.readouterr()
    args = [
        "verify",
        "resnet18",
        "--storage",
        db,
        "--top",
        "1",
        "--epochs",
        "1",
        "--seeds",
        "0,1",
        "--out",
        str(out),
    ]
    assert main([*args, "--json"]) == 0
    first = capsys.readouterr()
    info = json.loads(first.out)
    assert "for their latency" in first.err
    kinds = [r["kind"] for r in info["results"]]
    assert kinds[:2] == ["candidate", "base"] and len(kinds) in (2, 3)
    assert info["trained"] == 2 * len({tuple(r["widths"]) for r in info["results"]})
    for r in info["results"]:
        assert r["seeds"] == [0, 1] and r["n"] == 2 and 0 <= r["top1"] <= 1
        assert r["top1_std"] >= 0 and len(r["top1_seeds"]) == 2
    # the model as trained is counted, not predicted: check one against a real count
    base = next(r for r in info["results"] if r["kind"] == "base")
    assert (base["params"], base["macs"]) == count(
        __import__("timm").create_model("resnet18", num_classes=10), (3, 16, 16)
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == info["trained"]
    # verdicts: paired by seed against the base and the control, in JSON, CSV and study
    top1 = {(r["candidate"], int(r["seed"])): float(r["top1"]) for r in rows}
    cand = info["results"][0]
    control = next((r for r in info["results"] if r["kind"] == "control"), None)
    vs_base = cand["vs_base"]
    assert vs_base["reference"] == "base" and vs_base["seeds"] == [0, 1]
    assert vs_base["differences"] == [
        pytest.approx(top1[(cand["candidate"], s)] - top1[("base", s)]) for s in (0, 1)
    ]
    assert vs_base["low"] <= vs_base["mean"] <= vs_base["high"]
    assert vs_base["label"] in LABELS[:3] and base["vs_base"] is None
    if control is not None and not control["same_as"]:
        assert cand["vs_control"]["reference"] == control["candidate"]
        assert control["vs_base"] is not None and control["vs_control"] is None
    for r in rows:
        if r["kind"] == "candidate":
            assert float(r["top1_vs_base"]) == pytest.approx(
                top1[(r["candidate"], int(r["seed"]))] - top1[("base", int(r["seed"]))]
            )
            assert r["verdict_vs_base"] == vs_base["label"] and r["n"] == "2"
        if r["kind"] == "base":
            assert r["top1_vs_base"] == r["verdict_vs_base"] == ""
    # every model is timed as trained, next to its MACs, in the JSON, the CSV and the verdict
    assert "1 thread(s)" in info["latency_device"] and "median of 30" in info["latency_device"]
    for r in info["results"]:
        assert r["latency_ms"] > 0 and r["latency_spread"] >= 0
        assert all(
            float(row["latency_ms"]) == r["latency_ms"]
            for row in rows
            if row["widths_key"] == widths_key(r["widths"])
        )
    macs = cand["macs"] / base["macs"]
    ms = cand["latency_ms"] / base["latency_ms"]
    assert info["verdicts"][0].startswith(
        f"{cand['candidate']} ({macs:.2f}x MACs, {ms:.2f}x measured latency) against base: "
        f"{vs_base['label']} ("
    )
    study = optuna.load_study(study_name="resnet18", storage=db)
    stored = study.user_attrs["verify"][info["recipe_key"]]
    assert stored["summary"]["results"][0]["vs_base"] == vs_base
    # every run is a trial of the verification study, with its learning curve
    runs = optuna.load_study(study_name=stored["verification_study"], storage=db)
    assert stored["verification_study"] == f"resnet18/verify-{info['recipe_key']}"
    trials = runs.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == info["trained"] and len(runs.trials) == info["trained"]
    for t in trials:
        assert t.params["seed"] == t.user_attrs["seed"] and t.intermediate_values == {1: t.value}
        assert t.value == top1[(t.user_attrs["candidate"], t.user_attrs["seed"])]
    assert {t.user_attrs["kind"] for t in trials} >= {"candidate", "base"}
    assert stored["input_size"] == [3, 16, 16] and stored["data"] == "digits"
    assert not (tmp_path / "r.ckpt").exists()

    before = out.read_text()
    # timings from a busy machine (as under CI) are timed again: take these as quiet ones
    monkeypatch.setattr(verify_module, "NOISY_SPREAD", math.inf)
    monkeypatch.setattr(verify_module, "BUSY_CORES", math.inf)
    assert main(args) == 0
    again = capsys.readouterr()
    text = again.out
    assert f"0 run(s) trained, {info['trained']} already finished" in text
    assert "± " in text and "base" in text and "trial " in text
    assert "vs base" in text and "vs control" in text and "latency ms" in text
    assert f"verdict: {cand['candidate']} ({macs:.2f}x MACs, {ms:.2f}x measured" in text
    assert f"{base['latency_ms']:.2f} (1.00x)" in text
    # the latencies the study holds from this device are kept, not timed again
    assert "for their latency" not in again.err
    assert out.read_text() == before
    assert main([*args, "--retime"]) == 0  # asked to: timed again, quiet or not
    assert "for their latency" in capsys.readouterr().err
    # timings taken on a busy machine are timed again by the next run
    monkeypatch.setattr(verify_module, "NOISY_SPREAD", 0.25)
    timed = runs.user_attrs["latency"]
    planted = {k: [ms, 0.5] for k, (ms, _) in timed["ms"].items()}
    runs.set_user_attr("latency", timed | {"ms": planted})
    noisy_rows = [r | {"latency_spread": "0.5"} for r in csv.DictReader(out.open())]
    with out.open("w", newline="") as f:  # the CSV keeps the same timings as the study
        writer = csv.DictWriter(f, fieldnames=list(noisy_rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(noisy_rows)
    assert main(args) == 0
    assert "for their latency" in capsys.readouterr().err
    assert runs.user_attrs["latency"]["ms"] != planted
    # timings taken while other processes kept a core busy are said so, and timed again. The
    # machine's load comes from controlled /proc/stat readings (this process's own CPU time plus
    # `others` cores for the wall time), so the test holds however busy the machine really is.
    monkeypatch.setattr(verify_module, "NOISY_SPREAD", math.inf)  # steady, but loaded
    monkeypatch.setattr(verify_module, "BUSY_CORES", 0.5)
    others = {"cores": 1.25}

    def readings() -> float:
        own = os.times()
        return own.user + own.system + others["cores"] * time.perf_counter()

    monkeypatch.setattr(timing_module, "_busy_seconds", readings)
    assert main([*args, "--retime", "--json"]) == 0
    loaded = capsys.readouterr()
    busy = json.loads(loaded.out)
    assert busy["latency_load"] == pytest.approx(1.25, abs=0.01)
    assert runs.user_attrs["latency"]["others_busy"] == pytest.approx(1.25, abs=0.01)
    assert any(n.startswith("latency was timed while other processes kept") for n in busy["notes"])
    others["cores"] = 0.0  # the other process is gone
    assert main(args) == 0
    quiet = capsys.readouterr()
    assert "for their latency" in quiet.err  # timed again: the stored timings were busy
    load = runs.user_attrs["latency"]["others_busy"]
    assert load == pytest.approx(0.0, abs=0.01)
    assert f"(other processes: {load:.2f} CPU cores busy)" in quiet.out  # next to the device
    assert "while other processes kept" not in quiet.out
    monkeypatch.setattr(verify_module, "NOISY_SPREAD", 0.25)
    noisy = {"results": [{"latency_spread": 0.1}, {"latency_spread": 0.4}]}
    assert latency_notes(noisy) == [
        "latency timings were noisy (interquartile range up to 40% of the median; the machine "
        "was busy?): trust their ratios less; the next verify times them again"
    ]
    assert latency_notes({"results": [{"latency_spread": 0.2}, {"latency_spread": None}]}) == []
    assert latency_notes({"results": [], "latency_load": 1.04}) == [
        "latency was timed while other processes kept 1.0 CPU core(s) busy: their ratios may be "
        "off even where the timings look steady; the next verify times them again (run it when "
        "the machine is quiet)"
    ]
    assert latency_notes({"results": [], "latency_load": 0.3}) == []


def test_a_results_file_that_is_not_ours_is_refused(tmp_path, capsys, width_file):
    wf = width_file
    out = tmp_path / "r.csv"
    out.write_text("a,b\n1,2\n")
    assert main(["verify", str(wf), "--epochs", "1", "--seeds", "0", "--out", str(out)]) == 2
    assert "not a widthsearch verify CSV" in capsys.readouterr().err
    assert out.read_text() == "a,b\n1,2\n"


@pytest.mark.slow
def test_one_results_file_collects_several_verifications(tmp_path, capsys, tiny_space):
    """A second verification into the same CSV used to drop the first one's rows."""
    from widthsearch.models.widthfile import save_width_file
    from widthsearch.solve.reconfigure import reconfigure

    files = []
    for share in (2, 4):
        path = tmp_path / f"w{share}.json"
        result = reconfigure(tiny_space, params=tiny_space.params() // share, baselines=())
        save_width_file(path, result, tiny_space)
        files.append(path)
    out = tmp_path / "r.csv"
    quick = ["--epochs", "1", "--seeds", "0", "--max-steps", "2", "--train-subset", "64"]
    args = [*quick, "--latency-runs", "0", "--out", str(out)]
    assert main(["verify", str(files[0]), *args]) == 0
    first = list(csv.DictReader(out.open()))
    assert main(["verify", str(files[1]), *args]) == 0
    both = list(csv.DictReader(out.open()))
    assert both[: len(first)] == first  # kept in place (the shared base's row once)
    assert len({r["widths_key"] for r in both if r["kind"] == "candidate"}) == 2
    assert len({(r["widths_key"], r["seed"]) for r in both}) == len(both)  # base once
    capsys.readouterr()
    before = out.read_text()
    assert main(["verify", str(files[0]), *args]) == 0  # nothing new: the file is unchanged
    assert "0 run(s) trained" in capsys.readouterr().out and out.read_text() == before


# ------------------------------------------------------------- small runs tell the truth
def test_a_short_run_cuts_its_warm_up_and_says_so():
    """One epoch used to be all warm-up (the peak lr at the last step); now the warm-up is at
    most a quarter of the run and the recipe says so. Runs of 4+ epochs keep their schedule."""
    spe = 22  # digits: 1,438 images, batch 64
    short = Recipe(epochs=1)
    lrs = [short.lr_at(i, spe) for i in range(spe)]
    assert short.warmup_steps(spe) == 5
    assert max(lrs) == pytest.approx(short.lr) and lrs.index(max(lrs)) == 4
    assert lrs[-1] < 0.05 * short.lr  # cosine to (almost) zero by the end
    notes = short.notes(1438)
    assert any("warm-up cut to 5 steps, a quarter of this 22-step run" in n for n in notes)
    assert any("only 22 training steps" in n for n in notes)
    full = Recipe(epochs=8)
    assert full.warmup_steps(spe) == spe and full.notes(1438) == []
    assert [full.lr_at(i, spe) for i in range(spe)] == [full.lr * (i + 1) / spe for i in range(spe)]
    # a changed schedule is another setting: its results never mix with the old rule's
    assert "warmup_max_fraction" in short.key() and "warmup_max_fraction" not in full.key()


def test_max_steps_and_train_subset_train_less_and_are_their_own_setting(digits, tiny_space):
    import widthsearch.space._portable as portable
    from widthsearch.train.loop import training_subset
    from widthsearch.verify.plan import recipe_key

    widths = [
        w if g.fixed else max(8, w // 4)
        for g, w in zip(tiny_space.groups, tiny_space.base_widths, strict=True)
    ]
    spec = build_spec(tiny_space, widths)
    calls = []

    def on_step(epoch, step, steps, loss):
        calls.append((epoch, step, steps))

    cpu = torch.device("cpu")
    recipe = Recipe(epochs=3, max_steps=7)
    result = train(
        lambda: portable.build(spec, num_classes=10), digits, TINY, recipe, 0, cpu, on_step=on_step
    )
    assert result.steps == 7 and result.epochs == 1 and len(calls) == 7
    assert calls[-1] == (0, 6, 22)
    calls.clear()
    recipe = Recipe(epochs=2, train_subset=200)
    result = train(
        lambda: portable.build(spec, num_classes=10), digits, TINY, recipe, 0, cpu, on_step=on_step
    )
    assert result.steps == 6 and result.epochs == 2 and {c[2] for c in calls} == {3}
    sub = training_subset(digits.train, 200)
    assert torch.equal(sub.labels, training_subset(digits.train, 200).labels)  # fixed
    rows = {tuple(x.flatten().tolist()) for x in digits.train.images}
    assert len(sub) == 200 and all(tuple(x.flatten().tolist()) in rows for x in sub.images)
    keys = {
        recipe_key("resnet18", "digits", TINY, r)
        for r in (Recipe(), Recipe(max_steps=7), Recipe(train_subset=200))
    }
    assert len(keys) == 3
    assert "max_steps" not in Recipe().to_dict()  # a full run's key is what it always was
    with pytest.raises(WidthSearchError, match="less than one batch"):
        Recipe(train_subset=10)


@pytest.mark.slow
def test_a_quick_single_seed_check_warns_shows_n_1_and_no_spread(tmp_path, capsys, width_file):
    out = tmp_path / "r.csv"
    args = ["verify", str(width_file), "--epochs", "3", "--seeds", "3", "--out", str(out)]
    assert main([*args, "--max-steps", "8", "--train-subset", "256"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len([w for w in warnings if "warm-up cut to 2 steps" in w]) == 1
    assert any("only 8 training steps" in w for w in warnings)
    text = captured.out
    assert "QUICK CHECK: at most 8 steps, a fixed subset of 256 training images" in text
    assert "seeds 3 (n=1)" in text and "(n=1)" in text and "± 0.0" not in text
    assert "n=1, no verdict" in text and "note: warm-up cut to 2 steps" in text
    rows = list(csv.DictReader(out.open()))
    assert {r["n"] for r in rows} == {"1"} and {r["steps"] for r in rows} == {"8"}
    assert {r["verdict_vs_base"] for r in rows if r["kind"] != "base"} == {"n=1, no verdict"}
    assert json.loads(rows[0]["recipe"])["max_steps"] == 8
    assert main([*args, "--max-steps", "8", "--train-subset", "256", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trained"] == 0 and all(r["n"] == 1 for r in info["results"])
    assert all(r["top1_std"] is None for r in info["results"])


@pytest.mark.slow
@pytest.mark.parametrize("probe", [True, False])
def test_long_runs_print_an_estimate_of_their_time_before_the_bulk_of_the_work(
    tmp_path, digits, width_file, monkeypatch, probe
):
    """Each model timed up front where that is cheap next to the runs (here forced), else the
    first steps of the first run; either way one line before the bulk of the work."""
    import time

    import widthsearch.verify as verify
    from widthsearch.verify import estimate

    monkeypatch.setattr(estimate, "PROBE_SHARE", 1.0 if probe else 0.0)
    events = []

    def progress(cand, seed):
        events.append(("start", cand.label, time.perf_counter()))

    plan = verify.plan_from_width_files([width_file])
    t0 = time.perf_counter()
    report = verify.run_verify(
        plan,
        digits,
        verify.VerifySettings(
            epochs=1, max_steps=12, augment="none", head="timm", seeds=(0,), input_size=TINY
        ),
        verify.Execution(device="cpu", out=tmp_path / "r.csv", estimate_over=0.0),
        progress=progress,
        log=lambda m: events.append(("log", m, time.perf_counter())),
    )
    total = time.perf_counter() - t0
    runs = report.trained
    assert runs == len(events) - sum(e[0] == "log" for e in events) >= 2
    estimates = [i for i, e in enumerate(events) if e[1].startswith("estimate: ")]
    starts = [i for i, e in enumerate(events) if e[0] == "start"]
    assert len(estimates) == 1
    _, message, when = events[estimates[0]]
    assert f"for {runs} run(s) of 12 steps on cpu" in message
    if probe:  # before any training, with every model's step time
        assert estimates[0] < starts[0] and "timed over 3 steps of each: " in message
        assert all(f"{c.label} " in message for c in plan.candidates if c.kind != "control")
    else:  # during the first run
        assert starts[0] < estimates[0] < starts[1] and "were not timed" in message
    # the figure is rough (a shared machine's load changes) but of the right size
    value, unit = re.search(r"about ([\d.]+) (s|min|h) more", message).groups()
    said = float(value) * {"s": 1, "min": 60, "h": 3600}[unit]
    remaining = total - (when - t0)
    assert remaining / 5 <= max(said, 1) <= remaining * 5, (message, remaining)


@pytest.mark.slow
def test_timing_a_model_leaves_training_as_it_was(digits, tiny_space):
    """The up-front timing trains a throwaway model: the RNG, and so every run, is unchanged."""
    import widthsearch.space._portable as portable
    from widthsearch.train.loop import step_seconds

    spec = build_spec(tiny_space, tiny_space.base_widths)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    seconds = step_seconds(
        lambda: portable.build(spec, num_classes=10), digits, TINY, Recipe(), torch.device("cpu")
    )
    assert seconds > 0 and torch.equal(torch.get_rng_state(), before)


@pytest.mark.slow
def test_verify_with_random_controls_shows_them_and_the_candidates_verdict_against_them(
    tmp_path, capsys, width_file
):
    out = tmp_path / "r.csv"
    args = ["verify", str(width_file), "--epochs", "1", "--seeds", "0,1", "--out", str(out)]
    quick = ["--max-steps", "4", "--train-subset", "128", "--random", "2"]
    assert main([*args, *quick]) == 0
    text = capsys.readouterr().out
    assert "2 random-shape controls at the candidate's MACs" in text
    assert "vs random" in text and "against random shapes (mean of 2)" in text
    rows = list(csv.DictReader(out.open()))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("random") == 4  # two shapes, two seeds
    cand = [r for r in rows if r["kind"] == "candidate"]
    assert all(r["verdict_vs_random"] in LABELS and r["top1_vs_random"] for r in cand)
    assert all(r["verdict_vs_random"] == "" for r in rows if r["kind"] != "candidate")
    with pytest.raises(SystemExit) as exc:
        main([*args, "--random", "-1"])
    assert exc.value.code == 2 and "--random: expected an integer >= 0" in capsys.readouterr().err
    # latency is timed unless asked not to; too few runs for a median is one line, exit 2
    assert all(float(r["latency_ms"]) > 0 and "cpu" in r["latency_device"] for r in rows)
    before = out.read_text()
    assert main([*args, "--latency-runs", "5"]) == 2
    assert "latency runs must be 0 (no latency) or at least 20, got 5" in capsys.readouterr().err
    assert out.read_text() == before
    assert main([*args, *quick, "--latency-runs", "0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latency_device"] is None and all(r["latency_ms"] is None for r in info["results"])
    assert info["trained"] == 0 and "measured latency" not in " ".join(info["verdicts"])
    # controls at the candidate's params: their own runs, said so in the table
    assert main([*args, *quick, "--latency-runs", "0", "--match", "params"]) == 0
    text = capsys.readouterr().out
    assert "2 random-shape controls at the candidate's params" in text
    assert "run(s) trained, 4 already finished" in text  # candidate and base, 2 seeds each
    with pytest.raises(SystemExit) as exc:
        main([*args, "--match", "flops"])
    assert exc.value.code == 2 and "invalid choice: 'flops'" in capsys.readouterr().err


def test_the_estimate_with_workers_deals_the_runs_out_in_queue_order():
    """Workers take the next queued run as soon as they are free, so the slow candidates that
    queue last can leave one worker training alone: the wall time is the schedule's end, not
    the total shared out evenly."""
    # base, control and two random shapes per seed, then three candidates at twice the time
    queue = [10.0, 10.0, 11.0, 11.0] * 3 + [20.0] * 3
    assert sum(queue) / 2 == 93.0
    assert makespan(queue, 2) == 103.0  # 63 each after the controls; one trains the third
    assert makespan(queue, 1) == sum(queue)
    assert makespan(queue, 15) == 20.0 and makespan([], 2) == 0.0
    assert makespan([5.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2) == 5.0  # the other worker takes the rest
