"""Real images from folders and archives, the held-out split, augmentation and stem policies."""

from __future__ import annotations

import io
import tarfile
from collections import Counter

import numpy as np
import pytest
import timm
import torch

from tests.conftest import cifar10_archive
from widthsearch.train.augment import augment, epoch_generator
from widthsearch.train.data import DataError, held_out_split, load_dataset
from widthsearch.train.stem import StemError, apply_stem


def _jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _archive(path, per_class: int, classes=("cat", "dog", "ship"), top="train", size=32):
    """A tar.gz of real digits images, upscaled, one folder per class under ``top``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    with tarfile.open(path, "w:gz") as tar:
        for c, name in enumerate(classes):
            picks = np.flatnonzero(digits.target == c)[:per_class]
            for i, k in enumerate(picks):
                img = (digits.images[k] * 255 / 16).astype(np.uint8)
                img = np.kron(img, np.ones((size // 8, size // 8), dtype=np.uint8))
                data = _jpeg(np.stack([img] * 3, axis=-1))
                info = tarfile.TarInfo(f"{top}/{name}/{i:04d}.jpg" if top else f"{name}/{i}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_held_out_split_is_stratified_fixed_and_disjoint():
    labels = [i % 4 for i in range(400)] + [4] * 7
    train, val = held_out_split(labels)
    assert not set(train) & set(val) and sorted(train + val) == list(range(len(labels)))
    per_class = Counter(labels[i] for i in val)
    assert [per_class[c] for c in range(4)] == [10, 10, 10, 10] and per_class[4] == 1
    assert held_out_split(labels) == (train, val)  # the same on every call
    assert held_out_split(labels, seed=1)[1] != val


def test_an_archive_is_read_without_unpacking_and_its_train_folder_split(tmp_path):
    path = _archive(tmp_path / "imgs.tar.gz", per_class=30)
    for spec in (f"imagefolder:{path}", str(path)):
        data = load_dataset(spec)
        assert data.num_classes == 3 and (len(data.train), len(data.val)) == (81, 9)
        assert data.train.images.shape[1:] == (3, 32, 32)  # decoded once, into memory
        assert data.train.images.dtype == torch.uint8
        assert sorted(Counter(data.val.labels.tolist()).values()) == [3, 3, 3]
    again = load_dataset(f"imagefolder:{path}")
    assert torch.equal(again.val.images, data.val.images)


def test_a_cifar_folder_of_the_wrong_shape_is_one_line(tmp_path):
    path = _archive(tmp_path / "three.tar.gz", per_class=4)
    with pytest.raises(DataError, match="3 class folders where CIFAR-10 has 10") as err:
        load_dataset(f"cifar10:{path}")
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot read the archive"):
        load_dataset(f"imagefolder:{broken}")


@pytest.mark.slow
def test_real_cifar10_archive_holds_out_a_tenth_of_each_class():
    path = cifar10_archive()
    data = load_dataset(f"cifar10:{path}")
    assert (len(data.train), len(data.val), data.num_classes) == (45_000, 5_000, 10)
    assert set(Counter(data.val.labels.tolist()).values()) == {500}
    assert data.train.images.shape == (45_000, 3, 32, 32)
    assert 0.4 < data.mean[0] < 0.55 and 0.2 < data.std[0] < 0.3  # CIFAR-10's known statistics


def test_light_augmentation_crops_and_flips_reproducibly():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    cpu = torch.device("cpu")
    a = augment(x, "light", epoch_generator(0, 0, cpu))
    b = augment(x, "light", epoch_generator(0, 0, cpu))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(augment(x, "light", epoch_generator(0, 1, cpu)), a)
    for n in range(2):  # each output is a shifted, maybe mirrored window of the padded input
        padded = torch.nn.functional.pad(x[n], (1, 1, 1, 1))
        windows = [padded[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)]
        windows += [w.flip(2) for w in windows]
        assert any(torch.equal(a[n], w) for w in windows)
    flips = augment(
        torch.zeros(1000, 1, 2, 2).index_fill_(3, torch.tensor([0]), 1.0),
        "flip",
        epoch_generator(3, 0, cpu),
    )
    assert 400 < int(flips[:, 0, 0, 1].sum()) < 600  # about half are mirrored
    assert torch.equal(augment(x, "none", epoch_generator(0, 0, cpu)), x)


@pytest.mark.parametrize(
    "name, changed",
    [
        ("resnet18", ["conv1", "maxpool"]),
        ("efficientnet_b0", ["conv_stem", "blocks.1.0.conv_dw"]),
        ("regnetx_002", ["stem.conv", "s1.b1.conv2.conv", "s1.b1.downsample.conv"]),
    ],
)
def test_cifar_stem_removes_the_first_4x_of_downsampling(name, changed):
    base = timm.create_model(name, num_classes=10).eval()
    model = apply_stem(timm.create_model(name, num_classes=10), "cifar", (3, 32, 32)).eval()
    strided = {
        n
        for n, m in base.named_modules()
        if getattr(m, "stride", 1) not in (1, (1, 1))
        and dict(model.named_modules())[n].stride in (1, (1, 1))
    }
    assert strided == set(changed)
    feats = model.forward_features(torch.zeros(1, 3, 32, 32))
    assert feats.shape[-1] == 4 * base.forward_features(torch.zeros(1, 3, 32, 32)).shape[-1]


def test_a_stem_policy_that_breaks_the_model_is_one_line():
    class Mismatch(torch.nn.Module):  # a shortcut pooled differently from its branch
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.pool = torch.nn.AvgPool2d(2, stride=2)

        def forward(self, x):
            return self.conv(x) + self.pool(x).repeat(1, 2, 1, 1)[:, :4]

    with pytest.raises(StemError, match="use --stem timm") as err:
        apply_stem(Mismatch(), "cifar", (3, 8, 8))
    assert "\n" not in str(err.value)
