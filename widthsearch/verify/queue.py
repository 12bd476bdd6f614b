"""The verification study: one Optuna trial per (candidate, seed) run, a queue workers share.

A verification of one setting (model, data, training input size and recipe: its recipe key) is
a single-objective Optuna study, ``STUDY/verify-KEY`` (width files: ``MODEL/verify-KEY``), in
the storage of the search. Each run is a trial whose user attributes say what it trains (the
candidate's label, kind, widths, widths key, search trial, seed, recipe key: enough for any
worker to build it); its ``seed`` is a parameter, its validation top-1 is reported each epoch
(so optuna-dashboard draws learning curves), and its result row is a user attribute set before
the trial ends, COMPLETE or PRUNED.

- **One coordinator enqueues** (:func:`enqueue`): runs the study lacks (no trial of that run
  that did not fail) are enqueued, base and control first, then the candidates seed by seed;
  a second coordinator finds them there and adds nothing. Results of an earlier results CSV or
  of the study attribute older versions kept are imported as COMPLETE trials, not retrained;
  so are runs another verification in the same storage finished under the same recipe key
  (:func:`import_shared`: the same model, recipe, widths and seed), such as the base model
  that every study of that model verifies.
- **Workers claim atomically**: :func:`work` runs :meth:`optuna.study.Study.optimize`, whose
  ``ask`` pops a WAITING trial by a conditional state change that only one process wins (RDB
  and journal storages; on SQLite because :func:`widthsearch.storage.open_storage` begins
  every transaction IMMEDIATE, so that the read and the update of a claim hold the write
  lock together). Should two coordinators race and enqueue one
  run twice, the worker that claims the later copy sees the earlier one and ends its copy as
  FAIL (``skipped: duplicate``) without training: a run is never trained to completion twice.
- **A dead worker loses only its run**: with an RDB storage every running trial has a heartbeat
  thread, and any worker that finds a trial whose heartbeat is older than the grace period
  fails it and enqueues a retry (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`,
  intermediate values inherited), which resumes from the run's epoch checkpoint where that
  worker can see it. Journal storages have no heartbeats; there a worker fails and retries the
  running trials of processes on its own host that no longer exist
  (:func:`widthsearch.verify.recovery.reap`), which covers a killed ``--workers`` child and a
  crashed ``verify`` on that host.
- **Pruning sees each run once**: :class:`VerificationStudy` leaves failed trials (killed
  attempts, skipped duplicates) out of what pruners read, so a retried run's values are not
  counted twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Container, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from widthsearch.errors import QueueError
from widthsearch.search import VERIFICATION_MARK
from widthsearch.verify import _optuna
from widthsearch.verify.attrs import (
    CANDIDATE,
    IMPORTED,
    KIND,
    LOG_SYNEXP,
    MARK,
    PROTECTED,
    PRUNER,
    RECIPE_KEY,
    RESULT,
    RUN,
    SEARCH_MACS,
    SEARCH_PARAMS,
    SEARCH_TRIAL,
    SEED,
    SETTINGS,
    SHARED_FROM,
    WIDTHS,
    WIDTHS_KEY,
    WIDTHSEARCH,
)
from widthsearch.verify.plan import Candidate
from widthsearch.verify.pruners import make_pruner, resolve_pruner
from widthsearch.verify.recovery import recover

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState


def verification_name(owner: str, key: str) -> str:
    """The verification study of ``owner`` (a search study or a model name) for a recipe key."""
    return f"{owner}{VERIFICATION_MARK}{key}"


def _study_class() -> type[optuna.Study]:
    import optuna

    class VerificationStudy(optuna.Study):
        """A study whose readers (the pruner, the sampler) never see failed trials: a killed
        attempt whose run was retried, or a skipped duplicate, counts zero times, the retry
        once. The storage still holds them, as FAIL trials."""

        def get_trials(
            self, deepcopy: bool = True, states: Container[TrialState] | None = None
        ) -> list[FrozenTrial]:
            from optuna.trial import TrialState

            trials = super().get_trials(deepcopy=deepcopy, states=states)
            return [t for t in trials if t.state != TrialState.FAIL]

    return VerificationStudy


def open_verification(
    storage: Any,
    name: str,
    *,
    settings: dict[str, Any],
    pruner: str,
    candidates: int,
    epochs: int,
    create: bool = True,
) -> optuna.Study:
    """The verification study ``name`` in ``storage``, created with ``settings`` (recipe key,
    model, data, input size, recipe) and its pruner when it does not exist.

    The pruner is the study's: resolved (``auto``) once, when the study is made, so every
    worker and every later ``verify`` prunes alike; asking another is refused.

    Raises:
        QueueError: the study was made with another pruner, or is not a verification study.
    """
    import optuna

    asked = pruner
    made = False
    if create:
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
            resolved = resolve_pruner(pruner, candidates)
            study.set_user_attr(WIDTHSEARCH, MARK)
            study.set_user_attr(SETTINGS, settings)
            study.set_user_attr(PRUNER, resolved)
            made = True
        except optuna.exceptions.DuplicatedStudyError:
            pass
    study = optuna.load_study(study_name=name, storage=storage)
    attrs = study.user_attrs
    if not made and attrs.get(WIDTHSEARCH, MARK) != MARK:
        raise QueueError(f"study '{name}' exists and is not a widthsearch verification")
    stored = attrs.get(PRUNER) or resolve_pruner(pruner, candidates)
    if asked not in ("auto", stored):
        raise QueueError(
            f"verification '{name}' prunes with {stored}; give --pruner {stored} (or auto), "
            "or change the recipe to start another verification"
        )
    return _study_class()(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=make_pruner(stored, epochs),
    )


# ----------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    """One candidate trained with one seed."""

    candidate: Candidate
    seed: int
    protected: bool = False
    """Never pruned: the base, a control, or a candidate with their widths."""

    @property
    def id(self) -> str:
        return run_id(self.candidate.key, self.seed)

    def attrs(self, key: str) -> dict[str, Any]:
        """The trial's user attributes: what a worker needs to build and train it."""
        c = self.candidate
        return {
            RUN: self.id,
            CANDIDATE: c.label,
            KIND: c.kind,
            SEARCH_TRIAL: c.trial,
            WIDTHS_KEY: c.key,
            WIDTHS: list(c.widths),
            SEARCH_PARAMS: c.params,
            SEARCH_MACS: c.macs,
            LOG_SYNEXP: c.log_synexp,
            SEED: self.seed,
            RECIPE_KEY: key,
            PROTECTED: self.protected or c.kind != "candidate",
        }


def run_id(widths_key: str, seed: int) -> str:
    return f"{widths_key}-s{int(seed)}"


def candidate_of(attrs: dict[str, Any]) -> Candidate:
    """The candidate a trial's user attributes describe."""
    return Candidate(
        attrs[CANDIDATE],
        attrs[KIND],
        tuple(int(w) for w in attrs[WIDTHS]),
        int(attrs[SEARCH_PARAMS]),
        int(attrs[SEARCH_MACS]),
        float(attrs[LOG_SYNEXP]),
        attrs.get(SEARCH_TRIAL),
    )


def run_order(
    candidates: Sequence[Candidate], seeds: Sequence[int], held: Set[str] = frozenset()
) -> list[Run]:
    """The queue's order: base and control for every seed, then the candidates seed by seed.

    The references go first so that a pruner compares the first candidates with them; with
    one worker the runs train in this order, which is what makes pruning reproducible.
    ``candidates`` holds each width vector once; those whose widths key is in ``held`` (the
    references' widths, which a candidate may share) are protected like the references.
    """
    held = set(held) | {c.key for c in candidates if c.kind != "candidate"}
    refs = [c for c in candidates if c.key in held]
    cands = [c for c in candidates if c.key not in held]
    first = [Run(c, s, True) for s in seeds for c in refs]
    return first + [Run(c, s) for s in seeds for c in cands]


def _live(study: optuna.Study) -> set[str]:
    """Run ids with a trial that did not fail (waiting, running or finished)."""
    from optuna.trial import TrialState

    runs = (t.user_attrs.get(RUN) for t in _optuna.trials(study) if t.state != TrialState.FAIL)
    return {rid for rid in runs if rid is not None}


def _add_finished(
    study: optuna.Study,
    run: Run,
    key: str,
    value: float | None,
    result: dict[str, Any],
    intermediate_values: dict[int, float] | None,
    attrs: dict[str, Any],
) -> None:
    """Add ``run`` as a COMPLETE trial holding ``result``, trained elsewhere (``attrs``, more
    user attributes, say where)."""
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    seed = run.seed
    study.add_trial(
        optuna.create_trial(
            state=TrialState.COMPLETE,
            value=value,
            params={SEED: seed},
            distributions={SEED: IntDistribution(seed, seed)},
            intermediate_values=intermediate_values,
            user_attrs={**run.attrs(key), RESULT: result, **attrs},
        )
    )


def enqueue(
    study: optuna.Study, runs: Sequence[Run], key: str, imported: Sequence[dict[str, Any]] = ()
) -> int:
    """Import finished ``imported`` result rows and enqueue the ``runs`` the study lacks;
    returns the number of runs enqueued. A run that has any trial that did not fail (waiting,
    running, finished) is not enqueued again."""
    live = _live(study)
    by_id = {r.id: r for r in runs}
    for row in imported:
        rid = run_id(row["widths_key"], int(row["seed"]))
        if rid in live or rid not in by_id:
            continue
        _add_finished(
            study, by_id[rid], key, float(row["top1"]), plain(row), None, {IMPORTED: True}
        )
        live.add(rid)
    added = 0
    for run in runs:
        if run.id not in live:
            study.enqueue_trial({SEED: run.seed}, user_attrs=run.attrs(key))
            live.add(run.id)
            added += 1
    return added


def import_shared(study: optuna.Study, runs: Sequence[Run], key: str) -> dict[str, int]:
    """Take over the runs this verification lacks that another verification in the same
    storage trained to the end under the same recipe key; returns how many came from each.

    The recipe key names the model, data, input size and recipe, and a run is its widths and
    seed, so such a run is the very run this one would train: the unchanged base of a model,
    above all, which every study of that model verifies again, and controls or candidates that
    two studies share (a latency budget that changed nothing). Its trial is copied with its
    epoch values (so pruners see it as trained here) and its result row, relabelled as this
    verification names the model; ``shared_from`` says where it came from. Pruned runs are
    not taken (a pruner elsewhere judged them against other runs)."""
    from optuna.trial import TrialState

    live = _live(study)
    wanted = {r.id: r for r in runs if r.id not in live}
    suffix = f"{VERIFICATION_MARK}{key}"
    taken: dict[str, int] = {}
    for other in _optuna.studies(study):
        name = other.study_name
        if not wanted or name == study.study_name or not name.endswith(suffix):
            continue
        complete = _optuna.trials_of(study, other, (TrialState.COMPLETE,))
        for t in sorted(complete, key=lambda t: t.number):
            rid = t.user_attrs.get(RUN)
            run = None if rid is None else wanted.get(rid)
            result = t.user_attrs.get(RESULT)
            if run is None or not result or result.get("recipe_key") != key:
                continue
            c = run.candidate
            row = result | {
                "candidate": c.label,
                "kind": c.kind,
                "trial": c.trial,
                "search_params": c.params,
                "search_macs": c.macs,
                "log_synexp": c.log_synexp,
            }
            _add_finished(
                study, run, key, t.value, row, dict(t.intermediate_values), {SHARED_FROM: name}
            )
            del wanted[run.id]
            taken[name] = taken.get(name, 0) + 1
    return taken


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A result row as JSON-able values (CSV rows hold strings, NaN is not JSON)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def waiting(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(_optuna.trials(study, (TrialState.WAITING,)))


def running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return list(_optuna.trials(study, (TrialState.RUNNING,)))


def queued(study: optuna.Study) -> set[str | None]:
    """Run ids of the WAITING trials: the runs still to train."""
    from optuna.trial import TrialState

    return {t.user_attrs.get(RUN) for t in _optuna.trials(study, (TrialState.WAITING,))}


def duplicate_of(study: optuna.Study, number: int, rid: str) -> int | None:
    """The trial that makes claimed trial ``number`` of run ``rid`` a duplicate: one of that
    run that finished, or that runs or waits and came first (None: there is none)."""
    from optuna.trial import TrialState

    for t in _optuna.trials(study):
        if t.number == number or t.user_attrs.get(RUN) != rid:
            continue
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            return t.number
        if t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < number:
            return t.number
    return None


def completed_other_seed(study: optuna.Study, key: str, seed: int) -> bool:
    """Whether the widths ``key`` completed a run with another seed than ``seed`` (it survived
    the pruner once)."""
    from optuna.trial import TrialState

    return any(
        t.user_attrs.get(WIDTHS_KEY) == key and t.user_attrs.get(SEED) != seed
        for t in _optuna.trials(study, (TrialState.COMPLETE,))
    )


class Skip(Exception):
    """A claimed trial that is not trained: a duplicate of a run, or not a run at all."""


def work(
    study: optuna.Study,
    objective: Callable[[Any], float],
    *,
    poll: float = 1.0,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Claim and train queued runs until none is waiting or running anywhere.

    While other workers still run trials this one waits (``poll`` seconds between looks), so
    that a run whose worker dies is retried here. A trial that ``ask`` made because the queue
    emptied between a look and the claim is ended at once as FAIL (``skipped``).
    """

    def empty(study: optuna.Study, _trial: Any) -> None:
        if not waiting(study) or (stop is not None and stop()):
            study.stop()

    while stop is None or not stop():
        recover(study)
        if waiting(study):
            study.optimize(objective, callbacks=[empty], catch=(Skip,), gc_after_trial=False)
            continue
        if not running(study):
            return
        time.sleep(poll)


def finished(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    """The first finished (COMPLETE or PRUNED) trial of each run, by run id."""
    from optuna.trial import TrialState

    out: dict[str, Any] = {}
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    for t in sorted(_optuna.trials(study, states), key=lambda t: t.number):
        rid = t.user_attrs.get(RUN)
        if rid is not None and RESULT in t.user_attrs:
            out.setdefault(rid, t)
    return out


def result_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A finished trial's result row, with its state (``complete``/``pruned``) and, for a run
    taken over (``import_shared``), the verification that trained it (``shared_from``)."""
    from optuna.trial import TrialState

    row = dict(trial.user_attrs[RESULT])
    row["state"] = "pruned" if trial.state == TrialState.PRUNED else "complete"
    row["verify_trial"] = trial.number
    if SHARED_FROM in trial.user_attrs:  # trained by another verification, taken over
        row["shared_from"] = trial.user_attrs[SHARED_FROM]
    return row


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state name, for messages."""
    out: dict[str, int] = {}
    for t in _optuna.trials(study):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


__all__ = [
    "QueueError",
    "Run",
    "Skip",
    "candidate_of",
    "enqueue",
    "finished",
    "open_verification",
    "result_row",
    "run_id",
    "run_order",
    "verification_name",
    "work",
]
