"""Image classification data for verification runs, read from disk or bundled, never downloaded.

A data spec names a data set and where it lies:

- ``digits``: scikit-learn's bundled 8x8 digit images (1,797 real images, 10 classes), split
  1,437 / 360 by a fixed permutation. The default: it needs no files.
- ``mnist:DIR``: the four MNIST idx files, gzipped or raw, in ``DIR`` (or ``DIR/raw``,
  ``DIR/MNIST/raw``: torchvision's layout). Train/test are the official splits.
- ``cifar10:DIR``, ``cifar100:DIR``: the python batches (``cifar-10-batches-py``,
  ``cifar-100-python``) in ``DIR`` or one folder below it. Official splits.
- ``imagefolder:DIR``: one sub-folder of images per class; ``DIR/train`` and ``DIR/val`` when both
  exist, else a fixed 80/20 split of ``DIR``. Images are decoded as batches are drawn.

Every split yields uint8 images at their stored size (N, C, H, W); resizing to the input size,
channel conversion and normalization happen per batch on the training device (:func:`prepare`),
so a CIFAR run at 224x224 does not hold the upscaled data set in memory.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import WidthSearchError

if TYPE_CHECKING:
    import torch

KINDS = ("digits", "mnist", "cifar10", "cifar100", "imagefolder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SPLIT_SEED = 0
"""Seed of the fixed train/validation permutation of data sets without an official split."""


class DataError(WidthSearchError):
    """A data spec that cannot be read: unknown kind, missing, empty or corrupt files."""


@dataclass(frozen=True)
class Split:
    """Images and labels of one split. ``images`` is uint8 (N, C, H, W), or None for a split
    that decodes ``files`` on demand (image folders)."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    files: tuple[str, ...] = ()
    size: tuple[int, int] | None = None
    """(H, W) that decoded files are resized to (image folders only)."""

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch: uint8 images and int64 labels at ``index`` (a DataLoader may call this)."""
        import torch

        index = torch.as_tensor(index, dtype=torch.long)
        if self.images is not None:
            return self.images[index], self.labels[index]
        return torch.stack([_decode(self.files[i], self.size) for i in index.tolist()]), (
            self.labels[index]
        )


@dataclass(frozen=True)
class Dataset:
    """A train and a validation split with their class count and per-channel statistics."""

    name: str
    spec: str
    train: Split
    val: Split
    num_classes: int
    channels: int
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train):,} train / {len(self.val):,} validation images, "
            f"{self.num_classes} classes"
        )


def load_dataset(spec: str, input_size: Sequence[int] = (3, 32, 32)) -> Dataset:
    """The data set a spec names (see the module docstring).

    ``input_size`` only matters for image folders, whose images are decoded at that size.

    Raises:
        DataError: unknown kind, or a missing, empty or corrupt data set; the message says
            what was expected where.
    """
    kind, _, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(
            f"unknown data set '{spec}'; use digits, mnist:DIR, cifar10:DIR, cifar100:DIR "
            "or imagefolder:DIR"
        )
    if kind == "digits":
        if path:
            raise DataError("digits is bundled with scikit-learn and takes no DIR")
        return _digits(spec)
    if not path:
        raise DataError(f"{kind} needs a folder: --data {kind}:DIR")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{spec}: no folder at {root}")
    if kind == "mnist":
        return _mnist(spec, root)
    if kind in ("cifar10", "cifar100"):
        return _cifar(spec, root, kind)
    return _imagefolder(spec, root, tuple(input_size[1:]))  # type: ignore[arg-type]


def _finish(name: str, spec: str, train: Split, val: Split, classes: int) -> Dataset:
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{spec}: the train or validation split is empty")
    images = train.images
    if images is None:  # decoded on demand: statistics of a fixed sample of 256 images
        import torch

        gen = torch.Generator().manual_seed(SPLIT_SEED)
        sample = torch.randperm(len(train), generator=gen)[:256]
        images = train[sample][0]
    x = images.double() / 255
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return Dataset(
        name,
        spec,
        train,
        val,
        classes,
        images.shape[1],
        tuple(mean.tolist()),
        tuple(std.tolist()),
    )


# ------------------------------------------------------------------------------- digits
def _digits(spec: str) -> Dataset:
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images * (255 / 16)).round()).to(torch.uint8)[:, None]
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = len(labels) // 5
    val, train = order[:n_val], order[n_val:]
    return _finish(
        "digits (scikit-learn, 8x8)",
        spec,
        Split(labels[train], images[train]),
        Split(labels[val], images[val]),
        10,
    )


# -------------------------------------------------------------------------------- mnist
_MNIST = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}


def _find(root: Path, name: str, subdirs: Sequence[str]) -> Path | None:
    for sub in subdirs:
        for candidate in (name, f"{name}.gz", name.replace("-idx", ".idx")):
            p = root / sub / candidate
            if p.is_file():
                return p
    return None


def _read_idx(path: Path, dims: int, spec: str) -> torch.Tensor:
    import torch

    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{spec}: cannot read {path} ({exc})") from None
    magic = 0x800 + dims
    if len(raw) < 4 + 4 * dims or struct.unpack(">I", raw[:4])[0] != magic:
        raise DataError(f"{spec}: {path} is not an idx file of {dims} dimension(s)")
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    body = raw[4 + 4 * dims :]
    count = 1
    for s in shape:
        count *= s
    if len(body) != count or count == 0:
        raise DataError(f"{spec}: {path} holds {len(body)} bytes, its header says {count}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def _mnist(spec: str, root: Path) -> Dataset:
    subdirs = (".", "raw", "MNIST/raw")
    paths = {}
    for key, name in _MNIST.items():
        p = _find(root, name, subdirs)
        if p is None:
            raise DataError(
                f"{spec}: no {name}[.gz] in {root} (or raw/, MNIST/raw/); mnist:DIR needs the "
                "four MNIST idx files"
            )
        paths[key] = p
    arrays = {k: _read_idx(p, 3 if k.endswith("images") else 1, spec) for k, p in paths.items()}
    for split in ("train", "val"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataError(f"{spec}: {split} images and labels differ in count")
    classes = int(max(arrays["train_labels"].max(), arrays["val_labels"].max())) + 1
    return _finish(
        "MNIST",
        spec,
        Split(arrays["train_labels"].long(), arrays["train_images"][:, None]),
        Split(arrays["val_labels"].long(), arrays["val_images"][:, None]),
        classes,
    )


# -------------------------------------------------------------------------------- cifar
class _NumpyOnly(pickle.Unpickler):
    """CIFAR batches are pickles: allow the numpy array constructors and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path, spec: str) -> dict:
    try:
        with path.open("rb") as f:
            data = _NumpyOnly(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise DataError(f"{spec}: {path} is not a CIFAR python batch ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{spec}: {path} is not a CIFAR python batch")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _cifar(spec: str, root: Path, kind: str) -> Dataset:
    import numpy as np
    import torch

    if kind == "cifar10":
        folder, train_files, val_files = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            ["test_batch"],
        )
        label_key, classes = "labels", 10
    else:
        folder, train_files, val_files = "cifar-100-python", ["train"], ["test"]
        label_key, classes = "fine_labels", 100
    base = next((d for d in (root, root / folder) if (d / val_files[0]).is_file()), None)
    if base is None:
        raise DataError(
            f"{spec}: no {val_files[0]} in {root} or {root / folder}; {kind}:DIR needs the "
            f"python batches ({', '.join(train_files + val_files)})"
        )

    def read(names: list[str]) -> Split:
        xs, ys = [], []
        for name in names:
            p = base / name
            if not p.is_file():
                raise DataError(f"{spec}: {p} is missing")
            d = _unpickle(p, spec)
            try:
                x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(d[label_key], dtype=np.int64)
            except (KeyError, ValueError) as exc:
                raise DataError(f"{spec}: {p} lacks CIFAR data or {label_key} ({exc})") from None
            if len(x) != len(y):
                raise DataError(f"{spec}: {p} holds {len(x)} images but {len(y)} labels")
            xs.append(x)
            ys.append(y)
        return Split(torch.from_numpy(np.concatenate(ys)), torch.from_numpy(np.concatenate(xs)))

    name = "CIFAR-10" if kind == "cifar10" else "CIFAR-100"
    return _finish(name, spec, read(train_files), read(val_files), classes)


# -------------------------------------------------------------------------- imagefolder
def _class_files(root: Path) -> dict[str, list[str]]:
    return {
        d.name: sorted(
            str(f) for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }


def _decode(path: str, size: tuple[int, int] | None) -> torch.Tensor:
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(im, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode image {path} ({exc})") from None
    return torch.from_numpy(array).permute(2, 0, 1)


def _imagefolder(spec: str, root: Path, size: tuple[int, int]) -> Dataset:
    import torch

    if (root / "train").is_dir() and (root / "val").is_dir():
        train_classes, val_classes = _class_files(root / "train"), _class_files(root / "val")
        names = sorted(train_classes)
        if sorted(val_classes) != names:
            raise DataError(f"{spec}: train/ and val/ have different class folders")
        parts = [
            [(f, c) for c, n in enumerate(names) for f in d[n]]
            for d in (train_classes, val_classes)
        ]
    else:
        classes = _class_files(root)
        names = sorted(classes)
        items = [(f, c) for c, n in enumerate(names) for f in classes[n]]
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(SPLIT_SEED))
        n_val = len(items) // 5
        parts = [[items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]]
    if len(names) < 2:
        raise DataError(f"{spec}: imagefolder:DIR needs one sub-folder per class (found {names})")
    if not parts[0] or not parts[1]:
        raise DataError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    train, val = (
        Split(torch.tensor([c for _, c in p]), files=tuple(f for f, _ in p), size=size)
        for p in parts
    )
    return _finish(f"image folder {root.name}", spec, train, val, len(names))


# ------------------------------------------------------------------------------ batches
def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Index batches of one epoch: a permutation fixed by (seed, epoch) alone, so every
    candidate sees the same order and a resumed run draws what an uninterrupted one would."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return list(torch.randperm(n, generator=gen).split(batch_size))


def prepare(
    images: torch.Tensor,
    data: Dataset,
    input_size: Sequence[int],
    device: Any,
    channels_last: bool = False,
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalized float at ``input_size`` on ``device``."""
    import torch
    import torch.nn.functional as F

    c, h, w = input_size
    x = images.to(device, non_blocking=True).float().div_(255)
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    x = (x - mean) / std
    if x.shape[1] != c:  # grey to colour by repetition, colour to grey by the channel mean
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1)
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


__all__ = ["KINDS", "DataError", "Dataset", "Split", "batch_order", "load_dataset", "prepare"]
