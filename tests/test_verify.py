"""Verification: data sets from disk, the training recipe, resumption, and the verify command."""

from __future__ import annotations

import csv
import gzip
import json
import pickle
import struct

import numpy as np
import optuna
import pytest
import torch

from widthsearch import WidthSpace
from widthsearch.cli import main
from widthsearch.data import DataError, load_dataset
from widthsearch.native import build_spec
from widthsearch.train import Recipe, train
from widthsearch.verify import Candidate, training_setting, with_controls

from .conftest import count

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
    from widthsearch.reconfig import reconfigure
    from widthsearch.widthfile import save_width_file

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


def test_training_learns_and_an_interrupted_run_resumes_to_the_same_result(
    tmp_path, digits, tiny_space
):
    """Chance is 10%; the resumed run must reproduce the uninterrupted one exactly."""
    import widthsearch._portable as portable

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


def test_verify_a_study_prints_the_table_stores_results_and_skips_them_again(tmp_path, capsys):
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
    info = json.loads(capsys.readouterr().out)
    kinds = [r["kind"] for r in info["results"]]
    assert kinds[:2] == ["candidate", "base"] and len(kinds) in (2, 3)
    assert info["trained"] == 2 * len({tuple(r["widths"]) for r in info["results"]})
    for r in info["results"]:
        assert r["seeds"] == [0, 1] and 0 <= r["top1"] <= 1 and r["top1_std"] >= 0
    # the model as trained is counted, not predicted: check one against a real count
    base = next(r for r in info["results"] if r["kind"] == "base")
    assert (base["params"], base["macs"]) == count(
        __import__("timm").create_model("resnet18", num_classes=10), (3, 16, 16)
    )
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == info["trained"]
    study = optuna.load_study(study_name="resnet18", storage=db)
    stored = study.user_attrs["verify"][info["recipe_key"]]
    assert len(stored["rows"]) == info["trained"]
    assert stored["input_size"] == [3, 16, 16] and stored["data"] == "digits"
    assert not (tmp_path / "r.ckpt").exists()

    before = out.read_text()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"0 run(s) trained, {info['trained']} already finished" in text
    assert "± " in text and "base" in text and "trial " in text
    assert out.read_text() == before


def test_a_results_file_that_is_not_ours_is_refused(tmp_path, capsys, width_file):
    wf = width_file
    out = tmp_path / "r.csv"
    out.write_text("a,b\n1,2\n")
    assert main(["verify", str(wf), "--epochs", "1", "--seeds", "0", "--out", str(out)]) == 2
    assert "not a widthsearch verify CSV" in capsys.readouterr().err
    assert out.read_text() == "a,b\n1,2\n"
