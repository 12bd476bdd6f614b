"""Verification: train what the search proposes next to what it replaces, with one recipe.

A plan (:mod:`widthsearch.verify.plan`) holds the candidates, the unchanged **base** model and
the controls. All are trained from scratch by :func:`widthsearch.train.train` with the same
recipe, seeds and data order (:class:`widthsearch.verify.settings.VerifySettings`). A result is
identified by the model, data, training input size and recipe (its ``recipe_key``), the widths
and the seed. Each (candidate, seed) run is a trial of the verification study of that recipe
key, in the search's storage (:mod:`widthsearch.verify.queue`): enqueued once, claimed by
workers (``workers`` processes here, or ``verify`` on other machines with the same storage:
:class:`widthsearch.verify.settings.Execution`), reporting validation top-1 per epoch so that
a pruner (successive halving by default from
:data:`widthsearch.verify.pruners.AUTO_SHA_FROM` candidates on) stops weak candidates early;
the base and the control always train to the end. A re-run skips finished runs. The results
also go to a CSV (one row per run, pruned runs marked, :mod:`widthsearch.verify.results`), and
the summary ``verify`` prints, with its verdicts (:mod:`widthsearch.verify.summary`), to the
search study's ``verify`` attribute, which reports read.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from widthsearch.errors import VerifyInterrupted
from widthsearch.hardware.timing import others_busy, pinned_threads
from widthsearch.search import open_storage, storage_name, stored_latency
from widthsearch.storage import quiet_optuna
from widthsearch.verify import _optuna
from widthsearch.verify.attrs import PRUNER
from widthsearch.verify.estimate import Estimate, step_times
from widthsearch.verify.job import Job
from widthsearch.verify.latency import (
    latency_device,
    measure_trained_latency,
    store_latency,
    stored_run_latency,
)
from widthsearch.verify.objective import VerificationTrial
from widthsearch.verify.plan import Candidate, Plan
from widthsearch.verify.prepare import Setup, set_up
from widthsearch.verify.queue import (
    enqueue,
    finished,
    import_shared,
    open_verification,
    queued,
    result_row,
    work,
)
from widthsearch.verify.recovery import recover
from widthsearch.verify.results import (
    RowId,
    annotate_rows,
    numeric_row,
    order_rows,
    row_id,
    save_summary,
    write_results_csv,
)
from widthsearch.verify.settings import Execution, VerifySettings
from widthsearch.verify.summary import Summary, VerifyReport
from widthsearch.verify.workers import run_workers, worker_threads

if TYPE_CHECKING:
    import optuna

    from widthsearch.train.data import Dataset
    from widthsearch.verify.progress import Log, Progress

Rows = dict[RowId, dict[str, Any]]
"""The verification's result rows, by recipe key, widths key and seed."""


def run_verify(
    plan: Plan,
    data: Dataset,
    settings: VerifySettings,
    execution: Execution | None = None,
    *,
    progress: Progress | None = None,
    log: Log | None = None,
) -> VerifyReport:
    """Train every distinct width vector of ``plan`` for every seed not already finished,
    next to the base, the uniform control and ``settings.random`` random-shape controls, on
    ``data`` (``settings.data`` loaded at the training input size).

    ``settings`` is what is trained: the recipe, the seeds, the training input size (default:
    the search's), and what the controls match (``match``: the first candidate's ``macs`` or
    ``params``, :func:`~widthsearch.verify.plan.with_controls`; each has its own summary in
    the study).

    ``execution`` is how (default: ``Execution()``). The runs are trials of the verification
    study of this setting (:mod:`widthsearch.verify.queue`) in the plan's storage (width
    files: ``storage_url``, else in memory): enqueued once, trained here by ``workers``
    spawned processes (one per entry of ``devices`` when given; one worker trains in this
    process), or by ``verify`` on other machines sharing the storage. ``pruner`` (``auto``,
    ``sha``, ``hyperband``, ``median``, ``none``) stops weak candidates early; the base and the
    control always train to the end. Results go to ``out`` (CSV) and the summary to the plan's
    study; epoch checkpoints go to ``checkpoints`` (default: next to ``out``) and are removed
    once their result is stored. ``heartbeat``: seconds between heartbeats of a running trial
    (RDB storages). ``latency_runs``: timed forward passes per model for the measured latency
    of every model with a result (:func:`~widthsearch.verify.latency.measure_trained_latency`;
    0: not measured), taken after training in one interleaved run (kept in the verification
    study), and again unless that study or the CSV holds them for every such model from the
    same device (``retime``: timed again anyway, e.g. on a machine that is quiet now).

    ``progress`` makes each run's progress hooks (:data:`widthsearch.verify.progress.Progress`).
    ``log`` gets the recipe's warnings before training, one line per finished run and, once a
    few steps are timed, the estimated total time when it is over ``estimate_over`` seconds
    (default :data:`widthsearch.verify.estimate.LONG_RUN_SECONDS`; with workers, each model is
    timed up front at a worker's threads and the runs dealt out in queue order,
    :func:`widthsearch.verify.estimate.makespan`).

    Args:
        plan: what to train: candidates, base and controls, from a search study
            (:func:`~widthsearch.verify.plan.plan_from_study`) or width files.
        data: the loaded data set (:func:`widthsearch.train.load_dataset`).
        settings: the recipe, seeds, input size, controls and pruner.
        execution: workers, devices, storage, output CSV, checkpoints and timing.
        progress: per-run progress hooks, or None for none.
        log: where warnings, per-run lines and the time estimate go, or None.

    Returns:
        Everything ``widthsearch verify`` prints: every model's results, the paired verdicts
        and the notes (``to_dict()`` is its ``--json``).

    Raises:
        VerifyError: bad input (before anything is written), e.g. several workers without a
            storage to share the runs through.
    """
    execution = execution or Execution()
    setup = set_up(plan, data, settings, execution)
    study, done_before, todo = _open_queue(setup, data, execution, log)
    try:
        _train(setup, study, todo, data, execution, progress, log)
    except KeyboardInterrupt:
        raise _interrupted(setup, study) from None
    rows, trained = _collect(setup, study, done_before)
    measured, timed_on, load = _time_models(setup, study, rows, data, execution, log)
    plan = setup.plan
    report = VerifyReport(
        model=plan.space.model,
        study=plan.study.study_name if plan.study is not None else None,
        pick=plan.pick,
        data=data.spec,
        data_description=data.describe(),
        num_classes=data.num_classes,
        input_size=setup.size,
        search_input_size=plan.space.input_size,
        recipe=setup.recipe,
        recipe_key=setup.key,
        seeds=setup.seeds,
        device=", ".join(dict.fromkeys(setup.worker_devices)),
        summaries=_summaries(setup, rows),
        trained=trained,
        skipped=len(done_before),
        out=None if setup.out is None else str(setup.out),
        latency=None if plan.study is None else stored_latency(plan.study.user_attrs),
        val_images=len(data.val),
        warnings=setup.warnings,
        pruner=study.user_attrs.get(PRUNER, "none"),
        verification_study=setup.name,
        workers=len(setup.worker_devices),
        measured_latency=measured,
        latency_device=timed_on,
        latency_load=load,
        match=settings.match,
    )
    _write(report, setup, rows, timed_on, settings.match)
    return report


def _open_queue(
    setup: Setup, data: Dataset, execution: Execution, log: Log | None
) -> tuple[optuna.Study, set[str], list[tuple[Candidate, int]]]:
    """Open (or make) the verification study, take over runs other verifications finished,
    enqueue the runs it lacks; returns it, the runs finished before and the runs to train."""
    plan, recipe = setup.plan, setup.recipe
    if plan.study is not None:
        storage = _optuna.storage_of(plan.study)
    elif execution.storage_url is not None:
        storage = open_storage(execution.storage_url, heartbeat=execution.heartbeat)
    else:
        import optuna

        storage = optuna.storages.InMemoryStorage()
    spe = recipe.steps_per_epoch(len(data.train))
    candidates = len({c.key for c in plan.candidates if c.kind == "candidate"})
    with quiet_optuna():
        study = open_verification(
            storage,
            setup.name,
            settings=setup.stored,
            pruner=execution.pruner,
            candidates=candidates,
            epochs=recipe.epochs_run(spe),
        )
        shared = import_shared(study, setup.runs, setup.key)
        enqueue(study, setup.runs, setup.key, setup.imported)
    if shared and log is not None:
        log(
            f"note: {sum(shared.values())} run(s) taken over, not trained again: finished "
            "with the same recipe, widths and seed by "
            + ", ".join(f"'{n}' ({k})" for n, k in shared.items())
        )
    done_before = set(finished(study)) & setup.ids
    waiting = queued(study)
    todo = [(r.candidate, r.seed) for r in setup.runs if r.id in waiting]
    return study, done_before, todo


def _train(
    setup: Setup,
    study: optuna.Study,
    todo: list[tuple[Candidate, int]],
    data: Dataset,
    execution: Execution,
    progress: Progress | None,
    log: Log | None,
) -> None:
    """Train the runs of the queue: here (one worker) or by spawned workers, after the
    recipe's warnings and, for a long verification, the estimate of its time."""
    import torch

    recipe, devices = setup.recipe, setup.worker_devices
    spe = recipe.steps_per_epoch(len(data.train))
    job = Job(
        space=setup.plan.space,
        data_spec=data.spec,
        num_classes=data.num_classes,
        input_size=setup.size,
        recipe=recipe,
        key=setup.key,
        settings=setup.stored,
        study_name=setup.name,
        storage_url=setup.url,
        checkpoints=str(setup.checkpoints),
        compile=execution.compile,
        heartbeat=execution.heartbeat,
    )
    if todo and log is not None:
        for w in setup.warnings:
            log(f"warning: {w}")
    heartbeat = execution.heartbeat
    poll = 1.0 if heartbeat is None else min(1.0, heartbeat / 2)
    probe_on = setup.device if len(devices) == 1 else torch.device(devices[0])
    estimate = Estimate(
        todo,
        recipe.total_steps(spe),
        recipe.epochs_run(spe) * len(data.val),
        recipe.batch_size,
        probe_on,
        log or (lambda _: None),
        execution.estimate_over,
        workers=len(devices),
    )
    probe = log is not None and estimate.should_probe()
    if len(devices) == 1:
        objective = VerificationTrial(
            job,
            data,
            setup.device,
            say=log,
            progress=progress,
            estimate=estimate,
            order=[f"{c.key}-s{s}" for c, s in todo],
        )
        if probe:
            estimate.probed(step_times(job, todo, data, setup.device))
        with quiet_optuna():
            work(study, objective, poll=poll)
    else:
        if probe:  # each model timed here, at a worker's share of the threads
            threads = worker_threads(devices) if probe_on.type == "cpu" else None
            with pinned_threads(threads) if threads else contextlib.nullcontext():
                estimate.probed(step_times(job, todo, data, probe_on))
        run_workers(job, study, devices, poll, log)
    ckpt_dir = setup.checkpoints
    if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
        ckpt_dir.rmdir()


def _collect(setup: Setup, study: optuna.Study, done_before: set[str]) -> tuple[Rows, int]:
    """The result rows of this verification's runs, and how many were trained this time."""
    with quiet_optuna():
        recover(study)
    trials = finished(study)
    ids = setup.ids
    rows: Rows = {}
    for rid, t in trials.items():
        if rid in ids:
            row = numeric_row(result_row(t))
            rows[row_id(row)] = row
    trained = len((set(trials) & ids) - done_before)
    return rows, trained


def _interrupted(setup: Setup, study: optuna.Study) -> VerifyInterrupted:
    """Ctrl-C during training: keep the finished runs in the results CSV too (a verification
    in memory keeps them nowhere else; a re-run imports them from there), and say what is
    kept and how to go on. Optuna has marked the run that was cut off FAIL; it is queued
    again on the next run and resumes from its last epoch checkpoint."""
    rows: Rows = {}
    wrote = False
    with contextlib.suppress(Exception):  # a storage that went away with the Ctrl-C
        rows, _ = _collect(setup, study, set())
        if setup.out is not None and rows:
            write_results_csv(setup.out, order_rows(setup.csv_rows, rows))
            wrote = True
    done, total = len(rows), len(setup.runs)
    stored = setup.plan.study is not None or setup.url is not None
    places = [f"{storage_name(setup.url)} (study '{setup.name}')"] if stored else []
    places += [str(setup.out)] if wrote else []
    if not done:
        kept = "none to keep"
    elif not places:
        kept = "kept nowhere: the queue was in memory and no results file was given"
    else:
        kept = f"kept in {' and '.join(places)}"
        if not stored:
            kept += " (the queue was in memory: give --storage to keep runs in a study)"
    ckpt = setup.checkpoints
    cut = (
        f"; the run cut off resumes from its last epoch checkpoint in {ckpt}"
        if ckpt.is_dir() and any(ckpt.iterdir())
        else "; the run cut off had no finished epoch and starts again"
    )
    return VerifyInterrupted(
        f"stopped with {done} of {total} runs finished, {kept}{cut}; run the same command "
        "again to continue (finished runs are skipped)"
    )


def _time_models(
    setup: Setup,
    study: optuna.Study,
    rows: Rows,
    data: Dataset,
    execution: Execution,
    log: Log | None,
) -> tuple[dict[str, tuple[float, float]], str | None, float | None]:
    """The latency of every model with a result, as trained, what it was timed on, and the
    load it was timed under: kept from an earlier quiet timing, or timed now and kept."""
    have = {k[1] for k in rows}
    with_result = [c for c in setup.distinct if c.key in have]
    measured: dict[str, tuple[float, float]] = {}
    timed_on = None
    load: float | None = None
    runs = execution.latency_runs
    if runs and with_result:
        timer = latency_device(setup.worker_devices[0])
        timed_on = f"{timer.describe()}, median of {runs} interleaved runs"
        wanted = {c.key for c in with_result}
        kept = (
            None
            if execution.retime
            else stored_run_latency(study, setup.csv_rows, setup.key, timed_on, wanted)
        )
        if kept is not None:
            measured, load = kept
        else:
            if log is not None:
                log(f"timing {len(with_result)} model(s) as trained, for their latency ...")
            with others_busy() as busy:
                measured = measure_trained_latency(
                    setup.plan.space,
                    with_result,
                    data.num_classes,
                    setup.recipe.stem,
                    setup.size,
                    timer,
                    runs,
                )
            load = busy.cores if timer.type == "cpu" else None
            store_latency(study, measured, timed_on, load)
    return measured, timed_on, load


def _summaries(setup: Setup, rows: Rows) -> list[Summary]:
    """One summary per candidate of the plan, over its seeds' rows."""

    def summary_of(c: Candidate) -> Summary:
        key, first = setup.key, setup.first_label[c.key]
        mine = [rows[(key, c.key, s)] for s in setup.seeds if (key, c.key, s) in rows]
        return Summary(
            c,
            [r for r in mine if r.get("state") != "pruned"],
            None if first == c.label else first,
            [r for r in mine if r.get("state") == "pruned"],
        )

    return [summary_of(c) for c in setup.plan.candidates]


def _write(
    report: VerifyReport, setup: Setup, rows: Rows, timed_on: str | None, match: str
) -> None:
    """The rows with their verdicts to the results CSV, the summary to the search study."""
    summary = report.summary()
    annotate_rows(rows, setup.key, summary["results"], timed_on)
    if setup.out is not None:
        write_results_csv(setup.out, order_rows(setup.csv_rows, rows))
    if setup.plan.study is not None:
        save_summary(setup.plan.study, setup.stored, setup.name, summary, match)


__all__ = ["run_verify"]
