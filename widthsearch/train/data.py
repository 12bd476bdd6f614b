"""Image classification data for verification runs, read from disk or bundled, never downloaded.

A data spec names a data set and where it lies:

- ``digits``: scikit-learn's bundled 8x8 digit images (1,797 real images, 10 classes). The
  default: it needs no files.
- ``mnist:DIR``: the MNIST idx training files, gzipped or raw, in ``DIR`` (or ``DIR/raw``,
  ``DIR/MNIST/raw``: torchvision's layout).
- ``cifar10:PATH``, ``cifar100:PATH``: the python batches (``cifar-10-batches-py``,
  ``cifar-100-python``) in ``PATH`` or one folder below it, or the images as JPEG/PNG files in
  one folder per class (a folder, or a ``.tar``/``.tar.gz`` archive of one, such as
  ``cifar10-train.tar.gz`` with its ``train/<class>/*.jpg``).
- ``imagefolder:PATH`` (or a bare ``PATH``): one sub-folder of images per class, in a folder or
  a ``.tar``/``.tar.gz`` archive; ``train/`` and ``val/`` when both exist.

**Validation is always held out from the training images** (:func:`held_out_split`: a fixed,
class-stratified 10%), except for an image folder that brings its own ``val/``. Official test
splits (MNIST's t10k, CIFAR's test batch) are never read: every choice verification informs is
made on held-out training images, and the test images stay untouched for a final evaluation.

Small images (CIFAR-sized folders and archives, everything bundled) are decoded once at load
time into one uint8 tensor (N, C, H, W), which a CUDA run keeps on the GPU; large image
folders (ImageNet-style) decode per batch. Resizing to the input size, channel conversion,
augmentation and normalization happen per batch on the training device (:func:`normalize_batch`), so
a CIFAR run at 224x224 does not hold the upscaled data set in memory.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch.errors import DataError

if TYPE_CHECKING:
    import torch

KINDS = ("digits", "mnist", "cifar10", "cifar100", "imagefolder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SPLIT_SEED = 0
"""Seed of the fixed train/validation split of every data set."""
VAL_FRACTION = 0.1
"""Share of each class's training images held out for validation (see :func:`held_out_split`)."""


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

    ``input_size`` only matters for image folders of mixed or large images, which are
    decoded at that size.

    Raises:
        DataError: unknown kind, or a missing, empty or corrupt data set; the message says
            what was expected where.
    """
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        bare = Path(spec).expanduser()
        if bare.is_dir() or _is_archive(bare):  # a folder or archive given without a kind
            return _imagefolder(spec, bare, tuple(input_size[1:]))  # type: ignore[arg-type]
        raise DataError(
            f"unknown data set '{spec}'; use digits, mnist:DIR, cifar10:PATH, cifar100:PATH "
            "or imagefolder:PATH (a folder of class folders, or a .tar/.tar.gz of one)"
        )
    if kind == "digits":
        if path:
            raise DataError("digits is bundled with scikit-learn and takes no DIR")
        return _digits(spec)
    if not path:
        raise DataError(f"{kind} needs a folder: --data {kind}:PATH")
    root = Path(path).expanduser()
    archive = _is_archive(root)
    if not (root.is_dir() or (archive and kind != "mnist")):
        raise DataError(f"{spec}: no folder{'' if kind == 'mnist' else ' or archive'} at {root}")
    size = tuple(input_size[1:])
    if kind == "mnist":
        return _mnist(spec, root)
    if kind in ("cifar10", "cifar100"):
        return _cifar(spec, root, kind, size)  # type: ignore[arg-type]
    return _imagefolder(spec, root, size)  # type: ignore[arg-type]


def _hold_out(name: str, spec: str, images, labels, classes: int) -> Dataset:
    """A data set whose validation split is :func:`held_out_split` of its training images."""
    train, val = held_out_split(labels.tolist())
    return _finish(
        name, spec, Split(labels[train], images[train]), Split(labels[val], images[val]), classes
    )


def _finish(name: str, spec: str, train: Split, val: Split, classes: int) -> Dataset:
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{spec}: the train or validation split is empty")
    images = train.images
    if images is None:  # decoded on demand: statistics of a fixed sample of 256 images
        import torch

        gen = torch.Generator().manual_seed(SPLIT_SEED)
        sample = torch.randperm(len(train), generator=gen)[:256]
        images = train[sample][0]
    mean, std = _channel_stats(images)
    return Dataset(
        name,
        spec,
        train,
        val,
        classes,
        images.shape[1],
        mean,
        std,
    )


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, scaled to [0, 1], exactly
    (integer sums in chunks: a float64 copy of CIFAR-10 would take 1 GB)."""
    import torch

    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.int64)
    squares = torch.zeros(c, dtype=torch.int64)
    for chunk in images.split(4096):
        x = chunk.to(torch.int64)
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    n = images.numel() // c
    mean = total.double() / n
    var = (squares.double() - n * mean * mean) / max(n - 1, 1)
    std = var.clamp_min(0).sqrt() / 255
    return tuple((mean / 255).tolist()), tuple(std.clamp_min(1e-3).tolist())


# ------------------------------------------------------------------------------- digits
def _digits(spec: str) -> Dataset:
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images * (255 / 16)).round()).to(torch.uint8)[:, None]
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = len(labels) // 5  # 359 images: a tenth would leave too few to tell models apart
    val, train = order[:n_val], order[n_val:]
    return _finish(
        "digits (scikit-learn, 8x8)",
        spec,
        Split(labels[train], images[train]),
        Split(labels[val], images[val]),
        10,
    )


# -------------------------------------------------------------------------------- mnist
_MNIST = {"images": "train-images-idx3-ubyte", "labels": "train-labels-idx1-ubyte"}
"""The training files; the t10k test files are never read (validation is held out)."""


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
                "MNIST training idx files"
            )
        paths[key] = p
    images = _read_idx(paths["images"], 3, spec)
    labels = _read_idx(paths["labels"], 1, spec).long()
    if len(images) != len(labels):
        raise DataError(f"{spec}: {len(images)} images but {len(labels)} labels")
    return _hold_out("MNIST", spec, images[:, None], labels, int(labels.max()) + 1)


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


def _cifar(spec: str, root: Path, kind: str, size: tuple[int, int]) -> Dataset:
    """CIFAR's python training batches, or its images in class folders (or an archive)."""
    import numpy as np
    import torch

    classes = 10 if kind == "cifar10" else 100
    name = "CIFAR-10" if kind == "cifar10" else "CIFAR-100"
    if kind == "cifar10":
        folder, files, label_key = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "labels",
        )
    else:
        folder, files, label_key = "cifar-100-python", ["train"], "fine_labels"
    base = None
    if root.is_dir():
        base = next((d for d in (root, root / folder) if (d / files[0]).is_file()), None)
    if base is None:  # the images themselves, one folder per class
        data = _imagefolder(spec, root, size, name=f"{name} images")
        if data.num_classes != classes:
            raise DataError(
                f"{spec}: no python batches ({', '.join(files)}) in {root} or {root / folder}, "
                f"and {data.num_classes} class folders where {name} has {classes}"
            )
        return data
    xs, ys = [], []
    for file in files:
        p = base / file
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
    images = torch.from_numpy(np.concatenate(xs))
    return _hold_out(name, spec, images, torch.from_numpy(np.concatenate(ys)), classes)


# -------------------------------------------------------------------------- imagefolder
IN_MEMORY_BYTES = 4 * 2**30
"""Image folders whose decoded images fit in this many bytes are decoded once, at load time,
into one uint8 tensor (which a CUDA run then keeps on the GPU); larger ones decode per batch."""
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class _Image:
    """One image of a folder or archive: its path parts below the root, and where to read it."""

    parts: tuple[str, ...]
    source: str
    """A file path, or the member name inside the archive."""


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _folder_images(root: Path) -> list[_Image]:
    return [
        _Image(f.relative_to(root).parts, str(f))
        for f in sorted(root.rglob("*"))
        if f.is_file()
        and f.suffix.lower() in IMAGE_SUFFIXES
        and not any(p.startswith(".") for p in f.relative_to(root).parts)
    ]


def _read_archive(path: Path, spec: str) -> tuple[list[_Image], dict[str, bytes]]:
    """Every image of a tar archive (gzipped or not) and its bytes, in one pass."""
    import tarfile

    images, blobs = [], {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                parts = tuple(p for p in m.name.split("/") if p not in ("", "."))
                if (
                    not m.isfile()
                    or not parts
                    or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES
                    or any(p.startswith(".") for p in parts)
                ):
                    continue
                f = tar.extractfile(m)
                if f is None:
                    continue
                blobs[m.name] = f.read()
                images.append(_Image(parts, m.name))
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise DataError(f"{spec}: cannot read the archive {path} ({exc})") from None
    images.sort(key=lambda im: im.parts)
    return images, blobs


def _layout(images: list[_Image], spec: str) -> tuple[list[str], list, list | None]:
    """Class names, train items and val items (None: hold out a split) of a folder's images.

    ``train/`` and ``val/`` (one folder per class in each) are the official split; a lone
    ``train/`` (the layout of CIFAR-10's JPEG release) or class folders at the top are split.
    """
    tops = {im.parts[0] for im in images if len(im.parts) > 1}

    def classes_under(prefix: str | None) -> dict[str, list[_Image]]:
        found: dict[str, list[_Image]] = {}
        for im in images:
            parts = im.parts if prefix is None else im.parts[1:]
            if prefix is not None and im.parts[0] != prefix:
                continue
            if len(parts) >= 2:
                found.setdefault(parts[0], []).append(im)
        return found

    if {"train", "val"} <= tops:
        train, val = classes_under("train"), classes_under("val")
        if sorted(train) != sorted(val):
            raise DataError(f"{spec}: train/ and val/ have different class folders")
    elif tops == {"train"}:
        train, val = classes_under("train"), None
    else:
        train, val = classes_under(None), None
    names = sorted(train)
    if len(names) < 2:
        raise DataError(f"{spec}: imagefolder needs one sub-folder per class (found {names})")
    as_items = lambda d: [(im, c) for c, n in enumerate(names) for im in d[n]]  # noqa: E731
    return names, as_items(train), None if val is None else as_items(val)


def held_out_split(labels: Sequence[int], fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED):
    """Indices (train, val) of a fixed, class-stratified split: per class, a permutation
    fixed by ``seed`` and the class puts ``round(fraction * n)`` images (at least one) aside.

    The split depends only on the labels in the order given (sorted paths, for folders), so
    it is the same on every machine and in every run: the validation images are never trained on.
    """
    import torch

    train, val = [], []
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels):
        by_class.setdefault(int(c), []).append(i)
    for c, idx in sorted(by_class.items()):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + c)
        order = [idx[i] for i in torch.randperm(len(idx), generator=gen).tolist()]
        n_val = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        val += order[:n_val]
        train += order[n_val:]
    return sorted(train), sorted(val)


def _decode(source: str | bytes, size: tuple[int, int] | None) -> torch.Tensor:
    """An image file (a path, or its bytes) as uint8 (C, H, W), RGB, resized to ``size``."""
    import io

    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    what = source if isinstance(source, str) else "an archive member"
    try:
        with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as file:
            im = file.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(im, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot decode image {what} ({exc})") from None
    return torch.from_numpy(array).permute(2, 0, 1)


def _decode_all(
    items: list, blobs: dict[str, bytes] | None, size: tuple[int, int], *, resize: bool = False
) -> torch.Tensor:
    """All images of ``items`` as one uint8 tensor: at their stored size when they all share
    one (resized per batch on the device later), else (or with ``resize``) at ``size``."""
    import torch

    read = lambda im, at: _decode(blobs[im.source] if blobs else im.source, at)  # noqa: E731
    images = [read(im, size if resize else None) for im, _ in items]
    if len({tuple(x.shape) for x in images}) > 1:
        images = [read(im, size) for im, _ in items]
    return torch.stack(images)


def _imagefolder(
    spec: str, root: Path, size: tuple[int, int], *, name: str | None = None
) -> Dataset:
    """Class folders (or a tar archive of them), decoded into memory when they fit."""
    import torch

    blobs = None
    if _is_archive(root):
        images, blobs = _read_archive(root, spec)
    elif root.is_dir():
        images = _folder_images(root)
    else:
        raise DataError(f"{spec}: no folder or .tar/.tar.gz archive at {root}")
    if not images:
        raise DataError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    names, train_items, val_items = _layout(images, spec)
    if val_items is None:
        t, v = held_out_split([c for _, c in train_items])
        train_items, val_items = [train_items[i] for i in t], [train_items[i] for i in v]
    if not train_items or not val_items:
        raise DataError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    first = train_items[0][0]
    probe = _decode(blobs[first.source] if blobs else first.source, None)
    n = len(train_items) + len(val_items)
    small = probe.numel() * n <= IN_MEMORY_BYTES
    if blobs is not None and not small:
        raise DataError(
            f"{spec}: {n:,} images of {tuple(probe.shape)} are too many to decode into memory "
            "from an archive; unpack it and give the folder"
        )
    labels = [torch.tensor([c for _, c in items]) for items in (train_items, val_items)]
    if small:
        train_x, val_x = (_decode_all(items, blobs, size) for items in (train_items, val_items))
        if train_x.shape[1:] != val_x.shape[1:]:  # the splits differ: both at the input size
            train_x, val_x = (
                _decode_all(items, blobs, size, resize=True) if x.shape[-2:] != size else x
                for items, x in ((train_items, train_x), (val_items, val_x))
            )
        train, val = Split(labels[0], train_x), Split(labels[1], val_x)
    else:
        train, val = (
            Split(y, files=tuple(im.source for im, _ in items), size=size)
            for y, items in zip(labels, (train_items, val_items), strict=True)
        )
    where = "archive" if blobs is not None else "image folder"
    return _finish(name or f"{where} {root.name}", spec, train, val, len(names))


# ------------------------------------------------------------------------------ batches
def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Index batches of one epoch: a permutation fixed by (seed, epoch) alone, so every
    candidate sees the same order and a resumed run draws what an uninterrupted one would."""
    import torch

    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return list(torch.randperm(n, generator=gen).split(batch_size))


def _stats(data: Dataset, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The data set's mean and std as (1, C, 1, 1) tensors on ``device``, made once per device:
    a new host-to-device copy per batch would make every step wait for the GPU."""
    import torch

    cache = data.__dict__.setdefault("_stats_cache", {})
    key = str(device)
    if key not in cache:
        cache[key] = (
            torch.tensor(data.mean, device=device).view(1, -1, 1, 1),
            torch.tensor(data.std, device=device).view(1, -1, 1, 1),
        )
    return cache[key]


def normalize_batch(
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
    mean, std = _stats(data, x.device)
    x = (x - mean) / std
    if x.shape[1] != c:  # grey to colour by repetition, colour to grey by the channel mean
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1)
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


__all__ = [
    "KINDS",
    "DataError",
    "Dataset",
    "Split",
    "batch_order",
    "load_dataset",
    "normalize_batch",
]
