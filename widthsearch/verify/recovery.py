"""A dead worker loses only its run: the trials of dead workers go back to the queue.

With an RDB storage every running trial has a heartbeat thread, and any worker that finds a
trial whose heartbeat is older than the grace period fails it and enqueues a retry
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`, intermediate values inherited),
which resumes from the run's epoch checkpoint where that worker can see it. Journal storages
have no heartbeats; there a worker fails and retries the running trials of processes on its
own host that no longer exist (:func:`reap`), which covers a killed ``--workers`` child and a
crashed ``verify`` on that host. :func:`recover` does both; every worker calls it before it
looks for work (:func:`widthsearch.verify.queue.work`).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from widthsearch.verify import _optuna
from widthsearch.verify.attrs import WORKER

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback


def worker_id() -> str:
    """``host:pid``: what a running trial records as its worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    """What a failed (dead) run becomes: a WAITING copy with its intermediate values."""
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=3, inherit_intermediate_values=True)


def reap(study: optuna.Study) -> int:
    """Fail and retry the running trials of processes on this host that no longer exist (the
    journal's stand-in for heartbeats; harmless on RDB). Returns how many were retried."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    retried = 0
    for t in _optuna.trials(study, (TrialState.RUNNING,)):
        worker = str(t.user_attrs.get(WORKER, ""))
        h, _, pid = worker.rpartition(":")
        if h != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            if not _optuna.fail(study, t):
                continue
        except UpdateFinishedTrialError:
            continue
        retry_callback()(study, _optuna.reload(study, t))
        retried += 1
    return retried


def recover(study: optuna.Study) -> None:
    """Retry the runs of dead workers: stale heartbeats (RDB) and gone processes (this host)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    reap(study)


__all__ = ["reap", "recover", "retry_callback", "worker_id"]
