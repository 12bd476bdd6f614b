"""One training recipe for every verified candidate: short, seeded, resumable.

The recipe (:class:`Recipe`) is AdamW with a linear warm-up and a cosine decay computed from the
global step, label smoothing, and weight decay on weights only (not norms or biases): a schedule
that trains CNNs from scratch in few epochs without per-model tuning. Everything that decides the
result is a function of the seed and the epoch: model init (``torch.manual_seed(seed)`` before the
build), data order (:func:`widthsearch.train.data.batch_order`), dropout (the RNG state is in the
checkpoint). So candidates see the same data in the same order, and a run resumed from its last
epoch checkpoint ends exactly where an uninterrupted run ends.

Augmentation (:mod:`widthsearch.train.augment`) runs on the training device with draws seeded by
(seed, epoch) as well, and the stem policy (:mod:`widthsearch.train.stem`) and the head policy
(:mod:`widthsearch.train.head`) change every model built for training alike; all are part of the
recipe.

On CUDA an epoch runs without waiting for the GPU except to read the loss every
:data:`SYNC_EVERY` steps: in-memory data sets live on the GPU, the epoch's batch order is
copied there once, augmentation and normalization run there, the step runs under bfloat16
autocast with channels_last tensors and a fused AdamW, and ``compile=True`` hands the model
to ``torch.compile``. On CPU it runs in float32.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch.errors import WidthSearchError
from widthsearch.train.augment import POLICIES, augment, epoch_generator
from widthsearch.train.data import SPLIT_SEED, Dataset, Split, batch_order, normalize_batch
from widthsearch.train.head import apply_head
from widthsearch.train.head import check_policy as check_head
from widthsearch.train.output import logits as output_logits
from widthsearch.train.stem import apply_stem, check_policy

if TYPE_CHECKING:
    import torch
    from torch import nn


WARMUP_MAX_FRACTION = 0.25
"""The warm-up never takes more than this share of a run's steps (short runs, quick checks)."""
FEW_STEPS = 100
"""Runs with fewer optimizer steps than this get a warning: they say little about widths."""


@dataclass(frozen=True)
class Recipe:
    """How every candidate is trained; part of the key that identifies a result.

    ``max_steps`` and ``train_subset`` make quick checks: at most that many optimizer steps in
    all (the schedule is laid over them), and that many training images (a fixed subset, the
    same for every seed and candidate). Both are part of the key, so results of quick checks
    never mix with those of full runs.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment: str = "none"
    """An :mod:`widthsearch.train.augment` policy as it ran (``auto`` is resolved by the caller)."""
    stem: str = "timm"
    """A :mod:`widthsearch.train.stem` policy, applied to every model built for training."""
    head: str = "timm"
    """A :mod:`widthsearch.train.head` policy: how the classifier starts. ``timm`` is what results
    stored before the policy existed trained with; ``verify`` resolves its default ``auto`` to
    ``zero`` or ``timm`` before it trains (:func:`widthsearch.train.head.resolve_policy`)."""
    max_steps: int | None = None
    train_subset: int | None = None
    output: str | None = None
    """Which part of the model's output is the logits (:mod:`widthsearch.train.output`);
    None: the rule's default (a tensor itself, a dict's ``logits`` or ``out``, ...)."""

    def __post_init__(self) -> None:

        if self.epochs < 1 or self.batch_size < 2:
            raise WidthSearchError("epochs must be at least 1 and batch size at least 2")
        if not self.lr > 0:
            raise WidthSearchError(f"learning rate must be positive, got {self.lr}")
        if self.augment not in POLICIES:
            raise WidthSearchError(f"augmentation must be one of {', '.join(POLICIES)}")
        check_policy(self.stem)
        check_head(self.head)
        if self.max_steps is not None and self.max_steps < 1:
            raise WidthSearchError(f"max steps must be at least 1, got {self.max_steps}")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise WidthSearchError(
                f"a training subset of {self.train_subset} images is less than one batch of "
                f"{self.batch_size}; give a larger --train-subset or a smaller --batch-size"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields, without the ones that are unset or at the value they implied before
        they existed (so a full run's recipe, and its key, read as before those options)."""
        return {k: v for k, v in asdict(self).items() if k not in _ADDED or v != _ADDED[k]}

    def key(self) -> dict[str, Any]:
        """What identifies the schedule: the fields, and the warm-up rule where it binds."""
        info = self.to_dict()
        if self.max_steps is None and self.epochs < self.warmup_epochs / WARMUP_MAX_FRACTION:
            info["warmup_max_fraction"] = WARMUP_MAX_FRACTION
        return info

    def train_size(self, n_train: int) -> int:
        """Training images used: the subset, when one is set and smaller than the split."""
        return n_train if self.train_subset is None else min(n_train, self.train_subset)

    def steps_per_epoch(self, n_train: int) -> int:
        """Full batches only, so every step has the same batch size (at least one step)."""
        return max(1, self.train_size(n_train) // self.batch_size)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps in the whole run: the epochs', or ``max_steps`` if fewer."""
        total = self.epochs * steps_per_epoch
        return total if self.max_steps is None else min(total, self.max_steps)

    def epochs_run(self, steps_per_epoch: int) -> int:
        """Epochs the run touches (the last one partial when ``max_steps`` cuts it)."""
        return math.ceil(self.total_steps(steps_per_epoch) / steps_per_epoch)

    def warmup_steps(self, steps_per_epoch: int) -> int:
        """``warmup_epochs`` of steps, but at most a quarter of the run: a one-epoch run would
        otherwise be all warm-up and end near chance."""
        total = self.total_steps(steps_per_epoch)
        return min(round(self.warmup_epochs * steps_per_epoch), int(WARMUP_MAX_FRACTION * total))

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate of a global step: linear warm-up, then cosine to zero."""
        total = self.total_steps(steps_per_epoch)
        warm = self.warmup_steps(steps_per_epoch)
        if step < warm:
            return self.lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * self.lr * (1 + math.cos(math.pi * t))

    def notes(self, n_train: int) -> list[str]:
        """What a user should know before trusting a run of this recipe on ``n_train`` images:
        a shortened warm-up, a run too short to say much, a subset larger than the data."""
        spe = self.steps_per_epoch(n_train)
        total = self.total_steps(spe)
        notes = []
        if self.train_subset is not None and self.train_subset >= n_train:
            notes.append(
                f"--train-subset {self.train_subset} is not below the {n_train:,} training "
                "images: all of them are used"
            )
        asked = round(self.warmup_epochs * spe)
        warm = self.warmup_steps(spe)
        if warm < asked:
            notes.append(
                f"warm-up cut to {warm} steps, a quarter of this {total}-step run (asked: "
                f"{self.warmup_epochs:g} epoch = {asked} steps), so that a short run is not all "
                "warm-up"
            )
        if total < FEW_STEPS:
            notes.append(
                f"only {total} training steps per run (fewer than {FEW_STEPS}): accuracy this "
                "early says little about the widths; use this as a smoke test, not a result"
            )
        return notes


_ADDED = {
    "augment": "none",
    "stem": "timm",
    "head": "timm",
    "max_steps": None,
    "train_subset": None,
    "output": None,
}
"""Recipe fields added after results were first stored, with the value they implied."""


@dataclass
class TrainResult:
    """What one candidate reached with one seed (validation metrics of the last epoch)."""

    top1: float
    loss: float
    epochs: int
    """Epochs run, the last one partial when ``Recipe.max_steps`` cut it."""
    wall_seconds: float
    """Training plus evaluation, summed over resumed sessions."""
    images_per_second: float
    """Training images per second of training-step time (evaluation excluded)."""
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    """Epochs loaded from a checkpoint at the start of this session."""
    steps: int = 0
    """Optimizer steps of the whole run."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when it is available, else CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise WidthSearchError(f"unknown device '{name}'; use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise WidthSearchError("--device cuda, but torch sees no CUDA device; use cpu or auto")
    return torch.device(name)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically: an interrupted save leaves the previous one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _batches(split, order, workers: int, pin: bool):
    """Batches of a split in ``order`` (a list of index tensors).

    In-memory splits are indexed where they live, with the whole order copied there once;
    image folders are decoded by ``workers`` processes.
    """
    if split.images is not None:
        import torch

        sizes = [len(idx) for idx in order]
        flat = torch.cat(order).to(split.images.device, non_blocking=True)
        return ((split.images[idx], split.labels[idx]) for idx in flat.split(sizes))
    if workers == 0:
        return (split[idx] for idx in order)
    from torch.utils.data import DataLoader

    return iter(
        DataLoader(split, sampler=order, batch_size=None, num_workers=workers, pin_memory=pin)
    )


def on_device(data: Dataset, device: torch.device) -> Dataset:
    """``data`` with its in-memory splits moved to ``device`` (CUDA: read by the GPU there)."""
    if device.type == "cpu":
        return data
    moved = {}
    for name in ("train", "val"):
        split = getattr(data, name)
        if split.images is not None:
            images, labels = split.images.to(device), split.labels.to(device)
            split = replace(split, images=images, labels=labels)
        moved[name] = split
    return replace(data, **moved)


def evaluate(
    model: nn.Module,
    data: Dataset,
    input_size,
    device: torch.device,
    batch_size: int,
    output: str | None = None,
) -> tuple[float, float]:
    """(top-1, mean cross-entropy) on the validation split, read from the GPU once; the
    logits are the part of the model's output that ``output`` names
    (:mod:`widthsearch.train.output`)."""
    import torch
    import torch.nn.functional as F

    cuda = device.type == "cuda"
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    order = list(torch.arange(len(data.val)).split(batch_size))
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        for x, y in _batches(data.val, order, _workers(data, device), cuda):
            x = normalize_batch(x, data, input_size, device, channels_last=cuda)
            y = y.to(device, non_blocking=True)
            logits = output_logits(model(x), output).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    n = len(data.val)
    return correct.item() / n, total_loss.item() / n


def training_subset(split: Split, size: int) -> Split:
    """``size`` images of ``split`` drawn by a fixed permutation (seed ``SPLIT_SEED``), in their
    original order: the same subset for every seed and candidate, with every class likely in."""
    import torch

    if size >= len(split):
        return split
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    index = torch.randperm(len(split), generator=gen)[:size].sort().values
    if split.images is not None:
        return replace(split, images=split.images[index], labels=split.labels[index])
    files = tuple(split.files[i] for i in index.tolist())
    return replace(split, labels=split.labels[index], files=files)


def _workers(data: Dataset, device: torch.device) -> int:
    if data.train.images is not None:
        return 0
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else min(2, os.cpu_count() or 1)


def _step(model, optimizer, x, y, recipe: Recipe, device: torch.device) -> torch.Tensor:
    """One optimizer step on a prepared batch; the loss, not read (reading waits for a GPU).
    The loss is on the part of the output the recipe's ``output`` names (other outputs, such
    as auxiliary logits, are left out)."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = output_logits(model(x), recipe.output).float()
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def step_seconds(
    build: Callable[[], nn.Module],
    data: Dataset,
    input_size: tuple[int, int, int],
    recipe: Recipe,
    device: torch.device,
    steps: int = 3,
) -> float:
    """Seconds per training step of ``build()``'s model with ``recipe``'s batch, timed over
    ``steps`` steps after an untimed first one (which pays for lazy set-up). A throwaway model
    and optimizer: the RNG is saved and restored, so later training is unaffected."""
    import torch

    cuda = device.type == "cuda"
    rng = torch.get_rng_state()
    try:
        model = _model(build, recipe, input_size, device)
        model.train()
        optimizer = _optimizer(model, recipe, device)
        index = batch_order(len(data.train), recipe.batch_size, 0, 0)[0]
        x, y = data.train[index]
        x = normalize_batch(x, data, input_size, device, channels_last=cuda)
        y = y.to(device)
        for i in range(steps + 1):
            if i == 1:
                if cuda:
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
            _step(model, optimizer, x, y, recipe, device)
        if cuda:
            torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) / steps
    finally:
        torch.set_rng_state(rng)


SYNC_EVERY = 10
"""Steps between reads of the loss (each read waits for the GPU)."""

StepHook = Callable[[int, int, int, float], None]
"""(epoch, step in epoch, steps per epoch, last loss read) after each training step."""
EpochHook = Callable[[dict[str, float]], None]
"""The epoch's record (epoch, train_loss, val_loss, val_top1, seconds) after its checkpoint."""


def _optimizer(model: nn.Module, recipe: Recipe, device: torch.device):
    """AdamW with weight decay on weights only; fused into one kernel per step on CUDA."""
    import torch

    groups = _param_groups(model, recipe.weight_decay)
    return torch.optim.AdamW(groups, lr=recipe.lr, fused=device.type == "cuda" or None)


def _model(build: Callable[[], nn.Module], recipe: Recipe, input_size, device: torch.device):
    """``build()`` with the recipe's stem and head policies, on ``device`` (channels_last on
    CUDA)."""
    import torch

    model = apply_head(apply_stem(build(), recipe.stem, input_size), recipe.head).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def train(
    build: Callable[[], nn.Module],
    data: Dataset,
    input_size: tuple[int, int, int],
    recipe: Recipe,
    seed: int,
    device: torch.device,
    *,
    checkpoint: Path | None = None,
    on_step: StepHook | None = None,
    on_epoch: EpochHook | None = None,
    compile: bool = False,
) -> TrainResult:
    """Train ``build()`` from scratch with ``recipe`` and ``seed``; resume from ``checkpoint``.

    The model is built after ``torch.manual_seed(seed)`` and changed by the recipe's stem
    policy. The checkpoint is written after every epoch and left in place; the caller removes
    it once the result is stored. ``compile`` runs the training steps through
    ``torch.compile`` (worth its start-up on long CUDA runs; evaluation stays eager).
    """
    import torch

    cuda = device.type == "cuda"
    if cuda:  # every training batch has one shape: let cuDNN pick its fastest kernels once
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    model = _model(build, recipe, input_size, device)
    optimizer = _optimizer(model, recipe, device)
    split = data.train
    if recipe.train_subset is not None:
        split = training_subset(split, recipe.train_subset)
    n_train = len(split)
    steps = recipe.steps_per_epoch(n_train)
    total = recipe.total_steps(steps)
    start_epoch, history, wall, train_time, seen = 0, [], 0.0, 0.0, 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        start_epoch, history = state["epoch"], state["history"]
        wall, train_time, seen = state["wall"], state["train_time"], state["seen"]
    step_model = torch.compile(model) if compile else model
    workers = _workers(data, device)
    data = on_device(replace(data, train=split), device)
    for epoch in range(start_epoch, recipe.epochs_run(steps)):
        t0 = time.perf_counter()
        model.train()
        in_epoch = min(steps, total - epoch * steps)
        order = batch_order(n_train, recipe.batch_size, seed, epoch)[:in_epoch]
        gen = epoch_generator(seed, epoch, device)
        running = torch.zeros((), device=device)
        count, value = 0, math.nan
        for i, (x, y) in enumerate(_batches(data.train, order, workers, cuda)):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr_at(epoch * steps + i, steps)
            x = augment(x.to(device, non_blocking=True), recipe.augment, gen)
            x = normalize_batch(x, data, input_size, device, channels_last=cuda)
            y = y.to(device, non_blocking=True)
            loss = _step(step_model, optimizer, x, y, recipe, device)
            running += loss.detach() * len(y)
            count += len(y)
            if i % SYNC_EVERY == SYNC_EVERY - 1 or i == in_epoch - 1:  # a GPU sync: not always
                value = loss.item()
                if not math.isfinite(value):
                    raise WidthSearchError(
                        f"training diverged (loss {value}) at epoch {epoch + 1}; lower --lr"
                    )
            if on_step is not None:
                on_step(epoch, i, steps, value)
        seen += count
        if cuda:
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
        top1, val_loss = evaluate(
            model, data, input_size, device, 2 * recipe.batch_size, recipe.output
        )
        seconds = time.perf_counter() - t0
        wall += seconds
        record = {
            "epoch": epoch + 1,
            "train_loss": running.item() / max(count, 1),
            "val_loss": val_loss,
            "val_top1": top1,
            "seconds": seconds,
        }
        history.append(record)
        if checkpoint is not None:
            _save(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state() if cuda else None,
                    "epoch": epoch + 1,
                    "history": history,
                    "wall": wall,
                    "train_time": train_time,
                    "seen": seen,
                },
            )
        if on_epoch is not None:
            on_epoch(record)
    last = history[-1]
    return TrainResult(
        top1=last["val_top1"],
        loss=last["val_loss"],
        epochs=len(history),
        wall_seconds=wall,
        images_per_second=seen / train_time if train_time else 0.0,
        history=history,
        resumed_from=start_epoch,
        steps=total,
    )


__all__ = [
    "Recipe",
    "TrainResult",
    "evaluate",
    "on_device",
    "resolve_device",
    "step_seconds",
    "train",
    "training_subset",
]
