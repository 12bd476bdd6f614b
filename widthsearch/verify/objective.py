"""A verification trial's objective: train the run the trial names, report and prune it.

Each epoch's validation top-1 is reported to the trial, and a candidate the pruner rejects
is stopped there (never the base or a control, nor a candidate that completed another seed);
a run resumed from its epoch checkpoint reports what the checkpoint holds first. The result
row is set on the trial before it ends, COMPLETE or PRUNED.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from widthsearch.train.loop import TrainResult, train
from widthsearch.train.stem import apply_stem
from widthsearch.verify import _optuna
from widthsearch.verify.attrs import PROTECTED, RESULT, RUN, SEED, SKIPPED, WIDTHS_KEY, WORKER
from widthsearch.verify.latency import count_trained_model
from widthsearch.verify.queue import (
    Skip,
    candidate_of,
    completed_other_seed,
    duplicate_of,
    plain,
)
from widthsearch.verify.recovery import worker_id
from widthsearch.verify.results import result_row
from widthsearch.verify.summary import pruned_text

if TYPE_CHECKING:
    import optuna
    import torch

    from widthsearch.train.data import Dataset
    from widthsearch.verify.estimate import Estimate
    from widthsearch.verify.job import Job
    from widthsearch.verify.plan import Candidate
    from widthsearch.verify.progress import Log, Progress


class VerificationTrial:
    """Train the run a claimed trial names; report top-1 per epoch; let the pruner stop a
    candidate (never the base or a control) before its last epoch."""

    def __init__(
        self,
        job: Job,
        data: Dataset,
        device: torch.device,
        *,
        say: Log | None = None,
        progress: Progress | None = None,
        estimate: Estimate | None = None,
        order: Sequence[str] = (),
    ) -> None:
        self.job, self.data, self.device = job, data, device
        self.say, self.progress, self.estimate = say, progress, estimate
        self.order = {rid: i for i, rid in enumerate(order)}
        self.counts: dict[str, tuple[int, int]] = {}
        self.trained = 0

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        attrs = trial.user_attrs
        rid = attrs.get(RUN)
        if rid is None:  # ask() made a fresh trial: the queue emptied after the last look
            trial.set_user_attr(SKIPPED, "not a run: the queue was empty")
            trial.study.stop()
            raise Skip
        dup = duplicate_of(trial.study, trial.number, rid)
        if dup is not None:
            trial.set_user_attr(SKIPPED, f"duplicate of trial {dup}")
            raise Skip
        trial.set_user_attr(WORKER, worker_id())
        cand, seed = candidate_of(attrs), int(attrs[SEED])
        protected = bool(attrs.get(PROTECTED)) or cand.kind != "candidate"
        if not protected and completed_other_seed(trial.study, attrs[WIDTHS_KEY], seed):
            protected = True  # it survived the halving once: its seeds finish, for a verdict
        trial.suggest_int(SEED, seed, seed)
        job, recipe, size = self.job, self.job.recipe, self.job.input_size
        build = job.build(cand)
        if cand.key not in self.counts:
            self.counts[cand.key] = count_trained_model(
                apply_stem(build(), recipe.stem, size), size
            )
        counted = self.counts[cand.key]
        spe = recipe.steps_per_epoch(len(self.data.train))
        last = recipe.epochs_run(spe)
        ckpt = job.checkpoint(cand, seed)
        reported = set(_optuna.stored(trial).intermediate_values)
        history: list[dict[str, float]] = []

        def prune(record: dict[str, float]) -> None:
            """Report the epoch; stop a candidate the pruner rejects before its last epoch."""
            epoch = int(record["epoch"])
            history.append(record)
            if epoch not in reported:
                trial.report(float(record["val_top1"]), epoch)
                reported.add(epoch)
            if epoch >= last:
                return
            stop = trial.should_prune()  # asked for every run: references set the rungs too
            if stop and not protected:
                row = _pruned_row(cand, seed, record, history, spe, counted, job, self.device)
                trial.set_user_attr(RESULT, plain(row))
                ckpt.unlink(missing_ok=True)
                self.trained += 1
                if self.say:
                    self.say(f"{cand.label} seed {seed}: {pruned_text(_pruned_info(row))}; pruned")
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        if ckpt.is_file():  # resumed: what the checkpoint holds is reported (and judged) first
            import torch

            for record in torch.load(ckpt, map_location="cpu", weights_only=False)["history"]:
                prune(record)
        hooks = self.progress(cand, seed) if self.progress else None
        on_step, on_epoch, close = hooks if hooks else (None, None, None)
        if self.estimate is not None:
            self.estimate.begin(self.order.get(rid, 0))
            on_step = self.estimate.wrap(on_step)

        def epoch_done(record: dict[str, float]) -> None:
            if on_epoch is not None:
                on_epoch(record)
            prune(record)

        try:
            result = train(
                build,
                self.data,
                size,
                recipe,
                seed,
                self.device,
                checkpoint=ckpt,
                on_step=on_step,
                on_epoch=epoch_done,
                compile=job.compile,
            )
        finally:
            if close:
                close()
        row = result_row(cand, seed, result, counted, job.settings, self.device)
        trial.set_user_attr(RESULT, plain(row))
        ckpt.unlink(missing_ok=True)
        self.trained += 1
        if self.say:
            self.say(
                f"{cand.label} seed {seed}: top-1 {100 * result.top1:.1f}% after "
                f"{result.epochs} epoch(s), {result.wall_seconds:.0f} s"
                + (f" (resumed at epoch {result.resumed_from})" if result.resumed_from else "")
            )
        return result.top1


def _pruned_info(row: dict[str, Any]) -> dict[str, Any]:
    return {"seed": row["seed"], "epoch": row["pruned_at_epoch"], "top1": row["top1"]}


def _pruned_row(
    cand: Candidate,
    seed: int,
    record: dict[str, float],
    history: Sequence[dict[str, float]],
    spe: int,
    counted: tuple[int, int],
    job: Job,
    device: torch.device,
) -> dict[str, Any]:
    """The result row of a run stopped after ``record``'s epoch."""
    epoch, recipe = int(record["epoch"]), job.recipe
    partial = TrainResult(
        top1=float(record["val_top1"]),
        loss=float(record["val_loss"]),
        epochs=epoch,
        wall_seconds=sum(float(h["seconds"]) for h in history),
        images_per_second=math.nan,
        steps=min(epoch * spe, recipe.total_steps(spe)),
    )
    row = result_row(cand, seed, partial, counted, job.settings, device)
    row["images_per_second"] = None
    row["pruned_at_epoch"] = epoch
    return row


__all__: list[str] = []
