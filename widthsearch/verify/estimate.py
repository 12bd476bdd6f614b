"""How long a verification will take, said before the bulk of the work.

Widths of one model train at very different speeds, so where it costs little each distinct
model is timed for a few steps before training (:func:`step_times`); otherwise the first
steps of the first run stand for all of them. With several workers the runs are dealt out in
queue order (:func:`makespan`). A shared machine's load changes: the figure is rough.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from widthsearch.train.loop import step_seconds

if TYPE_CHECKING:
    import torch

    from widthsearch.train.data import Dataset
    from widthsearch.verify.job import Job
    from widthsearch.verify.plan import Candidate
    from widthsearch.verify.progress import Log, StepHook

ESTIMATE_STEPS = 5
"""Steps of the first run timed (after its first) when the models are not timed up front."""
PROBE_STEPS = 3
"""Steps timed per model (after one untimed) before training, for the estimate."""
PROBE_SHARE = 0.05
"""Models are timed up front only when that costs at most this share of the steps to train."""
LONG_RUN_SECONDS = 60.0
"""A verification estimated to take longer than this says so before the bulk of the work."""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of runs taking ``seconds``, claimed in this order by ``workers`` workers that
    each take the next run as soon as they are free (how a verification's queue empties).

    Not the total over the workers: the slow candidates queue last, and the last of them can
    leave one worker training alone (mobilenetv2_100 on 2 workers: 1.9 h, against 1.7 h for
    the total shared out evenly)."""
    free = [0.0] * max(1, workers)
    for s in seconds:
        i = free.index(min(free))
        free[i] += s
    return max(free)


class Estimate:
    """Says how long the runs to do will take, when that is over ``threshold`` seconds
    (None: :data:`LONG_RUN_SECONDS`).

    Widths of one model train at very different speeds (on a CPU, a half-params candidate
    with twice the base's MACs ran 2.5x faster than the base), so each distinct model is
    timed for a few steps before training (:func:`widthsearch.train.step_seconds`) when that
    costs little next to the runs (``PROBE_SHARE``); the estimate is then the sum over runs of
    steps x that model's step time. Otherwise (short runs) the first steps of the first run
    are timed and taken for every run, and the message says the others were not timed. Both
    add evaluation: a forward pass over the validation images per epoch, a third of a
    training step's time per image. A shared machine's load changes: a rough figure.
    """

    def __init__(
        self,
        runs: Sequence[tuple[Candidate, int]],
        steps: int,
        evaluations: int,
        batch_size: int,
        device: torch.device,
        log: Log,
        threshold: float | None = None,
        workers: int = 1,
    ) -> None:
        self.runs, self.steps, self.evaluations = list(runs), steps, evaluations
        self.workers = workers
        self.batch_size, self.device, self.log = batch_size, device, log
        self.threshold = LONG_RUN_SECONDS if threshold is None else threshold
        self.done = not runs
        self.index = 0
        self.start: tuple[int, float] | None = None
        self.seconds: float | None = None

    def should_probe(self) -> bool:
        models = len({c.key for c, _ in self.runs})
        return (PROBE_STEPS + 1) * models <= PROBE_SHARE * self.steps * len(self.runs)

    def _run_seconds(self, per_step: float) -> float:
        return per_step * (self.steps + self.evaluations / self.batch_size / 3)

    def probed(self, per_step: dict[str, float]) -> None:
        """Estimate from each model's step time (by widths key), before any training."""
        self.done = True
        self.seconds = makespan(
            [self._run_seconds(per_step[c.key]) for c, _ in self.runs], self.workers
        )
        named = {c.key: c.label for c, _ in self.runs}
        times = ", ".join(f"{named[k]} {t:.2f}" for k, t in per_step.items())
        self._say(f"s per step, timed over {PROBE_STEPS} steps of each: {times}")

    def begin(self, index: int) -> None:
        self.index, self.start = index, None

    def wrap(self, on_step: StepHook | None) -> StepHook:
        def hook(epoch: int, step: int, steps: int, loss: float) -> None:
            if on_step is not None:
                on_step(epoch, step, steps, loss)
            if not self.done:
                self._tick(epoch * steps + step)

        return hook

    def _now(self) -> float:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _tick(self, i: int) -> None:
        """In-run timing: the first run with enough steps left stands for all of them."""
        if self.start is None:
            self.start = (i, self._now())
            return
        i0, t0 = self.start
        if i - i0 < ESTIMATE_STEPS:
            return
        self.done = True
        per_step = (self._now() - t0) / (i - i0)
        later = len(self.runs) - self.index - 1
        this_run = self._run_seconds(per_step) - per_step * (i + 1)
        self.seconds = this_run + later * self._run_seconds(per_step)
        cand, seed = self.runs[self.index]
        self._say(
            f"{per_step:.2f} s per step, timed over {i - i0} steps of {cand.label} seed {seed}; "
            "the other widths were not timed and may train at other speeds"
        )

    def _say(self, how: str) -> None:
        if self.seconds is not None and self.seconds > self.threshold:
            self.log(
                f"estimate: about {_duration(self.seconds)} more for {len(self.runs)} run(s) of "
                f"{self.steps} steps on {self.device}"
                + (f", shared by {self.workers} workers" if self.workers > 1 else "")
                + f" ({how})"
            )


def step_times(
    job: Job, runs: Sequence[tuple[Candidate, int]], data: Dataset, device: torch.device
) -> dict[str, float]:
    """Seconds per training step of each distinct model of ``runs`` (by widths key), timed
    over ``PROBE_STEPS`` steps on ``device``: what the time estimate sums."""
    per_step: dict[str, float] = {}
    for cand, _ in runs:
        if cand.key not in per_step:
            per_step[cand.key] = step_seconds(
                job.build(cand),
                data,
                job.input_size,
                job.recipe,
                device,
                PROBE_STEPS,
            )
    return per_step


__all__ = ["ESTIMATE_STEPS", "LONG_RUN_SECONDS", "PROBE_SHARE", "PROBE_STEPS", "makespan"]
