"""What a verification trains, and how it runs: the two settings of
:func:`widthsearch.verify.run.run_verify`.

:class:`VerifySettings` is what is trained and compared: the recipe, the seeds, the training
input size and the controls. It is what a study file's ``[verify]`` section holds
(:mod:`widthsearch.studyfile`), what ``widthsearch verify``'s options give
(:mod:`widthsearch.cli.verify`) and what ``widthsearch run`` trains
(:func:`widthsearch.experiment.run_experiment`); its recipe is part of the key that makes
results comparable (:func:`widthsearch.verify.plan.recipe_key`).

:class:`Execution` is how the runs are carried out: on which devices and by how many workers,
through which storage, where the results and checkpoints go, how latency is timed. None of it
changes a result, so a verification can be continued with other ones (more workers, another
machine).

Progress bars and the message sink are callbacks, not settings: ``run_verify`` takes them as
keyword arguments (:data:`widthsearch.verify.progress.Progress`,
:data:`widthsearch.verify.progress.Log`).

Example:
    >>> from widthsearch.verify.settings import VerifySettings
    >>> s = VerifySettings(data="mnist:/data", epochs=2, seeds=(0,), max_steps=20)
    >>> r = s.recipe()
    >>> r.epochs, r.augment, r.max_steps
    (2, 'crop', 20)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from widthsearch.train.augment import resolve_policy
from widthsearch.train.loop import Recipe

if TYPE_CHECKING:
    import torch

MATCHES = ("macs", "params")
"""What the uniform and random controls are matched to: the first candidate's MACs (default)
or its params, as trained."""

LATENCY_RUNS = 30
"""Timed forward passes per model for the measured latency ``verify`` reports (0: none)."""


@dataclass(frozen=True)
class VerifySettings:
    """What a verification trains: the ``[verify]`` section of a study file, and ``verify``'s
    options. The fields up to ``output`` are the section's keys; ``max_steps`` and
    ``train_subset`` make quick checks (``--max-steps``, ``--train-subset``), which study files
    do not hold.

    ``data`` and ``top`` say what the caller loads and plans
    (:func:`widthsearch.train.load_dataset`, :func:`widthsearch.verify.plan.plan_from_study`);
    :func:`widthsearch.verify.run.run_verify` trains the plan and data it is given, with the
    rest.
    """

    data: str = "digits"
    input_size: tuple[int, int, int] | None = None
    """The training input size (None: the search's)."""
    top: int = 3
    random: int = 0
    """Random-shape controls at the first candidate's MACs (``verify --random``)."""
    match: str = "macs"
    """What the controls are matched to: the first candidate's macs or params (``--match``)."""
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    augment: str = "auto"
    """An augmentation policy (:mod:`widthsearch.train.augment`); ``auto`` suits it to ``data``."""
    stem: str = "timm"
    """A stem policy (:mod:`widthsearch.train.stem`)."""
    head: str = "auto"
    """A head policy (:mod:`widthsearch.train.head`)."""
    output: str | None = None
    """Which part of the model's output is the logits (``--output``; the rule:
    :mod:`widthsearch.train.output`); None: the rule's default."""
    max_steps: int | None = None
    """Quick check: at most this many optimizer steps per run (not in study files)."""
    train_subset: int | None = None
    """Quick check: a fixed subset of this many training images (not in study files)."""

    def recipe(self) -> Recipe:
        """The recipe every model trains with (``auto`` augmentation resolved for ``data``).

        Raises:
            WidthSearchError: a value the recipe refuses (a subset smaller than one batch, ...).
        """
        return Recipe(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            augment=resolve_policy(self.augment, self.data),
            stem=self.stem,
            head=self.head,
            max_steps=self.max_steps,
            train_subset=self.train_subset,
            output=self.output,
        )


@dataclass(frozen=True)
class Execution:
    """How a verification runs: none of it changes a result."""

    device: torch.device | str = "auto"
    """Where this process trains: ``auto``, ``cpu``, ``cuda`` or a device."""
    workers: int = 1
    """Spawned processes that claim runs from the queue (1: this process trains them)."""
    devices: Sequence[str] | None = None
    """One worker per device (``cuda:0``, ``cuda:1``, ...), instead of ``workers``."""
    pruner: str = "auto"
    """``auto``, ``sha``, ``hyperband``, ``median`` or ``none``
    (:mod:`widthsearch.verify.pruners`); a verification keeps the one it was made with."""
    storage_url: str | None = None
    """Where width files' verification study goes (a plan from a study uses the study's
    storage); None: in memory, one worker."""
    heartbeat: int | None = None
    """Seconds between heartbeats of a running trial (RDB storages)."""
    out: str | os.PathLike | None = None
    """The results CSV (None: none)."""
    checkpoints: str | os.PathLike | None = None
    """Folder of the epoch checkpoints (None: next to ``out``)."""
    compile: bool = False
    """Training steps through ``torch.compile``."""
    latency_runs: int = LATENCY_RUNS
    """Timed forward passes per model for the measured latency (0: not measured)."""
    retime: bool = False
    """Time the models again even where the study holds quiet timings of them."""
    estimate_over: float | None = None
    """Say the estimated time when it is over this many seconds (None:
    :data:`widthsearch.verify.estimate.LONG_RUN_SECONDS`)."""


__all__ = ["LATENCY_RUNS", "MATCHES", "Execution", "VerifySettings"]
