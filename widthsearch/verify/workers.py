"""Worker processes: one per device, each claiming runs from the verification's queue.

Workers are spawned, not forked (a forked child deadlocks in OpenMP once the parent has run
torch); each opens the storage and loads the data itself from the
:class:`~widthsearch.verify.job.Job` it is given, and claims runs until none is left
(:func:`widthsearch.verify.queue.work`). A worker that dies loses its run to the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from widthsearch.errors import VerifyError, WidthSearchError
from widthsearch.search import open_storage
from widthsearch.storage import quiet_optuna
from widthsearch.train.data import load_dataset
from widthsearch.verify.objective import VerificationTrial
from widthsearch.verify.progress import epoch_lines
from widthsearch.verify.queue import (
    open_verification,
    running,
    waiting,
    work,
)
from widthsearch.verify.recovery import recover

if TYPE_CHECKING:
    import optuna
    import torch

    from widthsearch.verify.job import Job
    from widthsearch.verify.progress import Log


def _worker_main(job: Job, index: int, device: str, threads: int | None, poll: float) -> None:
    """A spawned worker: open the storage, load the data, claim runs until none is left."""
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is not None:
            torch.cuda.set_device(dev)
        prefix = f"[worker {index + 1}] "

        def say(message: str) -> None:
            print(prefix + message, file=sys.stderr, flush=True)

        storage = open_storage(job.storage_url, heartbeat=job.heartbeat)
        data = load_dataset(job.data_spec, job.input_size)
        spe = job.recipe.steps_per_epoch(len(data.train))
        with quiet_optuna():
            study = open_verification(
                storage,
                job.study_name,
                settings=job.settings,
                pruner="auto",
                candidates=0,
                epochs=job.recipe.epochs_run(spe),
                create=False,
            )
            progress = epoch_lines(say, job.recipe.epochs_run(spe))
            work(study, VerificationTrial(job, data, dev, say=say, progress=progress), poll=poll)
    except WidthSearchError as exc:
        print(f"widthsearch: error: worker {index + 1}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def assign_devices(device: torch.device, workers: int, devices: Sequence[str] | None) -> list[str]:
    """One device per worker: ``devices`` as given, else ``device`` for every worker.

    Raises:
        VerifyError: a device torch does not know, or a CUDA device it does not see.
    """
    import torch

    if not devices:
        return [str(device)] * workers
    out = []
    for name in devices:
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise VerifyError(
                f"unknown device '{name}' in --devices; use cpu, cuda:0, ..."
            ) from None
        if dev.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if (dev.index or 0) >= count:
                raise VerifyError(f"--devices names {name}, but torch sees {count} CUDA device(s)")
        elif dev.type != "cpu":
            raise VerifyError(f"unknown device '{name}' in --devices; use cpu, cuda:0, ...")
        out.append(str(dev))
    return out


def worker_threads(devices: Sequence[str]) -> int | None:
    """Torch threads of each CPU worker: the cores shared out among them (None: no CPU
    worker)."""
    cpu = sum(1 for d in devices if d.startswith("cpu"))
    return max(1, (os.cpu_count() or 1) // cpu) if cpu else None


def run_workers(
    job: Job, study: optuna.Study, devices: Sequence[str], poll: float, log: Log | None
) -> None:
    """Spawn one worker per device (spawn, not fork: a forked child deadlocks in OpenMP once
    the parent has run torch) and wait for them. A worker that dies loses its run to the
    others (:func:`widthsearch.verify.recovery.reap`); one that fails with an error stops the
    command once the others have ended.

    Raises:
        VerifyError: a worker failed and runs are left unfinished.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    threads = worker_threads(devices)
    procs = []
    for i, dev in enumerate(devices):
        args = (job, i, dev, threads if dev.startswith("cpu") else None, poll)
        p = ctx.Process(target=_worker_main, args=args)
        p.start()
        procs.append(p)
    failed: list[tuple[int, int]] = []
    alive = list(enumerate(procs))
    while alive:
        wait([p.sentinel for _, p in alive])
        for i, p in list(alive):
            if p.exitcode is None:
                continue
            p.join()
            alive.remove((i, p))
            if p.exitcode != 0:
                failed.append((i, p.exitcode))
                if log is not None:
                    how = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit {p.exitcode}"
                    log(f"[worker {i + 1}] ended ({how}); its running run goes back to the queue")
                with quiet_optuna():
                    recover(study)
    with quiet_optuna():
        left = waiting(study) + len(running(study))
    if failed and left:
        i, code = failed[0]
        raise VerifyError(
            f"{len(failed)} worker(s) failed (worker {i + 1}: exit {code}) and {left} run(s) are "
            "not finished; run the same command again to continue"
        )


__all__: list[str] = []
