"""Running a search: workers share a study until it holds its trials, or time or Ctrl-C ends it.

:func:`run_search` checks a stored study against the config before anything runs, builds the
width space and the hardware models once, creates or loads the study
(:mod:`widthsearch.search.study`), and shares the trials it still lacks among ``workers``
processes; each builds its own width space and program and runs its share: the ``qmc`` loop
(:class:`~widthsearch.search.samplers.SobolMixes`, storage calls only) or Optuna's
:meth:`~optuna.study.Study.optimize` with the study's sampler, every trial the
:class:`~widthsearch.search.objective.SearchTrial`. The first Ctrl-C lets every process finish and
store its running trial; the study never holds a half-done one.

Storage: :mod:`widthsearch.storage` (SQLite by default, journal files, PostgreSQL). Fronts:
:mod:`widthsearch.search.front` (the whole front, and the thinned one that is shown).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from widthsearch.errors import SearchInterrupted, StudyConfigError, WidthSearchError
from widthsearch.search.attrs import StudyAttr
from widthsearch.search.front import load_front
from widthsearch.search.hardware import HardwareModels, hardware_models
from widthsearch.search.objective import Infeasible, SearchTrial
from widthsearch.search.samplers import SobolMixes, make_sampler, mix_distributions
from widthsearch.search.settings import DEFAULT_SAMPLER, SearchConfig
from widthsearch.search.study import check_settings, finished_count, open_study, unfinished
from widthsearch.solve import Budgets
from widthsearch.solve.objectives import get_objective
from widthsearch.solve.solver import compiled_program
from widthsearch.space import WidthSpace
from widthsearch.storage import find_study, open_storage, quiet_failures, storage_name

if TYPE_CHECKING:
    import optuna


def _count(storage: Any, study_id: int) -> int:
    """Finished trials, counted by the storage (one query, not every trial read)."""
    from optuna.trial import TrialState

    return storage.get_n_trials(study_id, (TrialState.COMPLETE, TrialState.PRUNED))


class _Stop:
    """When a process's search stops: its share done, the timeout, or Ctrl-C.

    The first Ctrl-C only asks: the running trial finishes and is stored, then the search
    stops, in every process of the run (``event`` is shared). A second Ctrl-C interrupts at
    once (the default handler is back); a trial cut off that way is marked FAIL, which no
    count and no front includes.
    """

    def __init__(self, event: Any) -> None:
        self.event = event
        self.deadline: float | None = None
        self.requested = False
        self._previous: Any = None

    def start(self, timeout: float | None) -> None:
        """Start the clock of ``timeout`` seconds (None: no limit)."""
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):  # not SIG_IGN: a shell's background job ignores Ctrl-C
                self._previous = previous
                signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        self.requested = True  # only a flag: a handler must not take the event's lock
        signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *_exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    @property
    def interrupted(self) -> bool:
        return self.requested or self.event.is_set()

    def __call__(self) -> bool:
        """True once this process should start no further trial."""
        if self.requested and not self.event.is_set():
            self.event.set()  # tell the run's other processes
        if self.interrupted:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline


@dataclass
class _Process:
    """One process's share of a search: its storage handle, study, trial and sampler."""

    storage: Any
    study: optuna.Study
    study_id: int
    trial: SearchTrial
    seed: int | None


def _start_process(
    config: SearchConfig,
    storage_url: str | None,
    seed: int | None,
    space: WidthSpace | None = None,
    hardware: HardwareModels | None = None,
) -> _Process:
    """A process's handle (its own width space, program and connection; a worker loads the
    latency model from the profile or the cache the parent filled)."""
    quiet_failures()
    if space is None:
        kwargs = dict(config.timm_kwargs)
        space = WidthSpace.from_ref(config.model, input_size=config.input_size, **kwargs)
    if hardware is None:
        hardware = hardware_models(config, space)
    trial = SearchTrial(space, config, hardware)
    storage = open_storage(storage_url)
    study = open_study(config, storage, create=False, url=storage_url)
    trial.load_seen(study)
    if config.grid.empty:  # compile the program now, not in the first trial
        program = compiled_program(space, hardware.costs, get_objective(config.objective))
        program.solve(
            Budgets(params=space.params()), min_width=config.ranges.min_width[0], max_width=1.0
        )
    study_id = storage.get_study_id_from_name(config.name)
    return _Process(storage, study, study_id, trial, seed)


def _run(proc: _Process, n_trials: int, stop: _Stop, on_trial: Callable | None = None) -> None:
    """Run up to ``n_trials`` trials in this process until ``stop`` says so."""
    sampler = proc.trial.config.sampler
    if sampler == "qmc":
        _run_qmc(proc, n_trials, stop, on_trial)
        return
    assert sampler is not None, "run_search resolves the sampler before any process starts"
    study = proc.study
    study.sampler = make_sampler(sampler, proc.seed)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial()
        if stop():
            study.stop()

    if not stop():
        study.optimize(proc.trial, n_trials=n_trials, callbacks=[callback], gc_after_trial=False)


def _run_qmc(proc: _Process, n_trials: int, stop: _Stop, on_trial: Callable | None) -> None:
    """The ``qmc`` loop: trial number n solves Sobol point n and is written as it finishes.

    Only storage calls (no Optuna sampler, no reads of other trials): a trial costs its solve
    and a handful of small writes, the same at trial 2,000 as at trial 1.
    """
    from optuna.trial import TrialState

    storage, study_id, search_trial = proc.storage, proc.study_id, proc.trial
    ranges = search_trial.config.ranges
    sobol = SobolMixes(ranges, search_trial.config.seed or 0)
    for _ in range(n_trials):
        if stop():
            return
        trial_id = storage.create_new_trial(study_id)
        try:
            number = storage.get_trial_number_from_id(trial_id)
            params = sobol.params(number)
            try:
                widths, values, attrs = search_trial.run(number, params)
                state = TrialState.COMPLETE
            except Infeasible as exc:
                widths, values, attrs = None, None, {exc.key: str(exc)}
                state = TrialState.PRUNED
            dists = mix_distributions(ranges, params["mode"])
            for name, value in params.items():
                d = dists[name]
                storage.set_trial_param(trial_id, name, d.to_internal_repr(value), d)
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
            storage.set_trial_state_values(
                trial_id, state, None if values is None else [float(v) for v in values]
            )
            if widths is not None:
                search_trial.remember(number, widths)
        except BaseException:  # an error, or a second Ctrl-C: the trial fails
            with contextlib.suppress(Exception):  # unless the storage itself is gone
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            raise
        if on_trial:
            on_trial()


def _worker(
    config: SearchConfig,
    storage_url: str | None,
    n_trials: int,
    seed: int | None,
    timeout: float | None,
    ready: Any,
    event: Any,
) -> None:
    """A worker process: start up, tell the parent, then run its share of the trials."""
    import sys

    try:
        with _Stop(event) as stop:
            proc = _start_process(config, storage_url, seed)
            ready.set()
            stop.start(timeout)
            _run(proc, n_trials, stop)
    except KeyboardInterrupt:  # a second Ctrl-C: the parent says what happened
        sys.exit(130)


@dataclass(frozen=True)
class SearchResult:
    """What :func:`run_search` did: the study's finished trials after it, the new ones among
    them and the seconds they took (start-up included), and the study's front."""

    study_name: str
    storage: str
    trials: int
    new_trials: int
    seconds: float
    report: dict[str, Any]
    """What :func:`load_front` returns for the study after the run."""

    @property
    def front(self) -> list[dict[str, Any]]:
        return self.report["front"]


def _resolve(config: SearchConfig, study: optuna.Study) -> SearchConfig:
    """``config`` with the study's sampler and seed where it leaves them open (recording them
    on a study made before they were recorded)."""
    attrs = study.user_attrs
    sampler = config.sampler or attrs.get(StudyAttr.SAMPLER) or DEFAULT_SAMPLER
    seed = config.seed if config.seed is not None else attrs.get(StudyAttr.SEED)
    if seed is None and sampler == "qmc":
        seed = random.SystemRandom().randrange(2**31)
        study.set_user_attr(StudyAttr.SEED, seed)
    if StudyAttr.SAMPLER not in attrs:
        study.set_user_attr(StudyAttr.SAMPLER, sampler)
    return replace(config, sampler=sampler, seed=seed)


def run_search(
    config: SearchConfig,
    storage_url: str | None = None,
    *,
    workers: int = 1,
    timeout: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Run the study up to ``config.trials`` finished trials in total (a re-run resumes).

    ``workers`` processes share the study; each builds its own width space and program. The
    model is analysed before the storage is opened (an unknown model leaves no file), and a
    stored study is checked against ``config`` before anything runs (:func:`check_settings`).
    ``progress``: the study's finished trials on stderr, as a bar on a terminal, else (a log
    file, a pipe) a plain line every :data:`LINE_SECONDS` seconds and one at the end.

    Args:
        config: the model, input size, ranges, sampler, seed and trial count (a study file's
            ``[search]``, :func:`widthsearch.studyfile.load_config`).
        storage_url: an Optuna storage URL (None: ``sqlite:///widthsearch.db``;
            ``journal:FILE``; ``postgresql://...`` for many machines).
        workers: local processes sharing the study.
        timeout: seconds after which no new trial starts.
        progress: draw a progress bar on stderr.

    Returns:
        The study's name and storage, its finished trials, the new ones, the seconds they took
        and the study's front.

    Raises:
        StorageError: the storage cannot be used, or the study has other settings.
        SearchInterrupted: Ctrl-C; the trials that were running finished and are stored.
    """
    if workers < 1:
        raise StudyConfigError(f"workers must be at least 1, got {workers}")
    quiet_failures()  # the study's own lines, not Optuna's
    # the model first: an unknown or unsupported one is refused before a storage file exists
    space = WidthSpace.from_ref(config.model, input_size=config.input_size, **config.timm_kwargs)
    storage = open_storage(storage_url)
    existing = find_study(storage, config.name)
    if existing is not None and not unfinished(existing):
        check_settings(config, existing, storage_url)  # before any work, and nothing written
    # spawn, not fork: a forked child deadlocks in OpenMP once the parent has run torch
    ctx = multiprocessing.get_context("spawn")
    event = ctx.Event()
    with _Stop(event) as stop:  # from here a Ctrl-C lets the step it lands in finish
        hardware = hardware_models(config, space, progress=_stderr if progress else None)
        study = open_study(config, storage, space=space, url=storage_url, hardware=hardware)
        config = _resolve(config, study)
        done = finished_count(study)
        remaining = max(0, config.trials - done)
        shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
        start = time.perf_counter()
        stop.start(timeout)
        starting = []
        for i, share in enumerate(shares[1:], 1):
            if share and not stop():
                seed = None if config.seed is None or config.sampler == "qmc" else config.seed + i
                ready = ctx.Event()
                args = (config, storage_url, share, seed, timeout, ready, event)
                p = ctx.Process(target=_worker, args=args)
                p.start()
                starting.append((p, ready))
        own = (
            _start_process(config, storage_url, config.seed, space, hardware) if shares[0] else None
        )
        for p, ready in starting:  # wait for their start-up (imports, width space): shares overlap
            while not ready.wait(0.2) and p.is_alive() and not stop():
                pass
        procs = [p for p, _ in starting]
        bar = _progress(config.trials, done, own) if progress and own else None
        try:
            if own is not None:
                _run(own, shares[0], stop, bar)
            for p in procs:
                while p.is_alive():
                    p.join(0.2)
                    stop()  # passes a Ctrl-C on to the workers
        finally:
            for p in procs:
                p.join()
            if bar:
                bar.close()
        interrupted = stop.interrupted
    seconds = time.perf_counter() - start
    if interrupted:
        total = _count(storage, storage.get_study_id_from_name(config.name))
        raise SearchInterrupted(
            f"stopped after {total - done} new trial(s); study '{config.name}' in "
            f"{storage_name(storage_url)} holds {total} finished trials and no half-done one; "
            "run the same command again to continue"
        )
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise WidthSearchError(f"{len(failed)} worker process(es) failed (exit {failed[0]})")
    report = load_front(config.name, storage_url)
    return SearchResult(
        study_name=config.name,
        storage=storage_name(storage_url),
        trials=report["trials"],
        new_trials=report["trials"] - done,
        seconds=seconds,
        report=report,
    )


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


LINE_SECONDS = 10.0
"""Seconds between progress lines when stderr is not a terminal (a log file, a pipe)."""


def _progress(total: int, done: int, proc: _Process) -> _ProgressBar | _ProgressLines:
    """A bar on a terminal; elsewhere (a log, CI, ``2> file``) a plain line now and then."""
    import sys

    if sys.stderr.isatty():
        return _ProgressBar(total, done, proc)
    return _ProgressLines(total, done, proc, LINE_SECONDS)


class _ProgressLines:
    """Progress as plain lines on stderr, for a log: the study's finished trials (every
    worker's) and the rate, at most every :data:`LINE_SECONDS` seconds, and once at the end."""

    def __init__(self, total: int, done: int, proc: _Process, every: float) -> None:
        self.proc, self.total, self.done, self.every = proc, total, done, every
        self.start = self.shown = time.perf_counter()
        self.count = done
        _stderr(f"search: {done:,}/{total:,} trials finished; a line every {every:g} s")

    def __call__(self) -> None:
        self.count += 1
        now = time.perf_counter()
        if now - self.shown >= self.every:
            self.shown = now
            self.count = _count(self.proc.storage, self.proc.study_id)  # other workers' too
            self._line(now)

    def _line(self, now: float) -> None:
        rate = (self.count - self.done) / max(now - self.start, 1e-9)
        _stderr(f"search: {self.count:,}/{self.total:,} trials finished ({rate:.1f} trials/s)")

    def close(self) -> None:
        self.count = _count(self.proc.storage, self.proc.study_id)
        self._line(time.perf_counter())


class _ProgressBar:
    """A tqdm bar on stderr: finished trials of the study (every worker's) and trials/s.

    The study's count is read from the storage at most once a second, as one count query.
    """

    def __init__(self, total: int, done: int, proc: _Process) -> None:
        from tqdm import tqdm

        self.proc = proc
        self.bar = tqdm(total=total, initial=done, unit="trial", desc="search", leave=True)
        self.shown = time.perf_counter()

    def __call__(self) -> None:
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.shown >= 1.0:
            self.shown = now
            self.bar.n = _count(self.proc.storage, self.proc.study_id)  # other workers' too
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


__all__ = ["SearchResult", "run_search"]
