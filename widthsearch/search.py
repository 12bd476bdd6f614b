"""Optuna search over constraint mixes: each trial is one re-solve of the prebuilt program.

A trial samples a constraint mix (budget ratios, width bounds, divisor, mode), re-solves the
width space's :class:`~widthsearch.solve.SynExpProgram` and rounds, and records the mix, the
widths, params, MACs and log SynExp on the trial. Objectives: log SynExp (maximize), params and
MACs (minimize), and predicted latency on the study's device (minimize) when the study has a
latency model (``latency = true`` or a latency range); latency and activation-memory budget
ratios join the mix when their ranges are set. A mix that lands on widths an earlier trial
found is marked ``duplicate_of`` and kept out of the front; an infeasible mix is pruned with
its reason.

Storage (:func:`open_storage`): a SQLite file by default; ``journal:PATH`` (or a ``.log``
path) for an Optuna journal file that several processes on one host share; any SQLAlchemy URL,
PostgreSQL in particular, for workers on many machines, with heartbeats so that a killed
worker's running trial is failed and retried.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import WidthSearchError
from .rounding import RoundingError, round_on_grid
from .solve import Budgets, InfeasibleBudgetError, SynExpProgram
from .study import StudyConfig, StudyConfigError
from .synexp import log_synexp

if TYPE_CHECKING:
    import optuna

    from .cost import Posynomial
    from .latency import LatencyModel
    from .memory import ActivationMemory
    from .space import WidthSpace

OBJECTIVES = ("log_synexp", "params", "macs")
DEFAULT_STORAGE = "sqlite:///widthsearch.db"
DIRECTIONS = ("maximize", "minimize", "minimize")
"""Directions of log SynExp, params and MACs; a latency objective adds one more minimize."""
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30


class StorageError(WidthSearchError):
    """A storage URL that cannot be opened, or a study that does not fit the command."""


# ------------------------------------------------------------------------------- storage
def open_storage(url: str | None) -> Any:
    """An Optuna storage for ``url`` (see the module docstring); checks that it is reachable."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    url = url or DEFAULT_STORAGE
    try:
        if url.startswith("journal:") or url.endswith((".log", ".journal")):
            path = url.removeprefix("journal:")
            return JournalStorage(JournalFileBackend(path))
        if "://" not in url:
            url = f"sqlite:///{url}"
        sqlite = url.startswith("sqlite")
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else {},
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        if sqlite:
            _fast_sqlite(storage.engine)
        return storage
    except optuna.exceptions.OptunaError:
        raise
    except Exception as exc:  # SQLAlchemy/driver errors: unreachable host, bad URL, no file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage '{url}': {first}") from None


def _fast_sqlite(engine: Any) -> None:
    """WAL journal and NORMAL sync: a commit costs a write, not an fsync (still crash-safe)."""
    from sqlalchemy import event

    def on_connect(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections made while Optuna set the tables up lack the pragmas


def _exists(storage: Any, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def _load(storage: Any, name: str) -> optuna.Study | None:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def open_study(
    config: StudyConfig,
    storage: Any,
    *,
    create: bool = True,
    space: WidthSpace | None = None,
    hardware: HardwareModels | None = None,
) -> optuna.Study:
    """The study ``config.name``: created with its settings (and ``space``'s base, and the
    latency and memory models in ``hardware``), or loaded and checked.

    Raises:
        StorageError: the stored study was made for another model, input size or objectives.
    """
    import optuna

    study = _load(storage, config.name)
    if study is not None:
        attrs = study.user_attrs
        if attrs.get("model") != config.model or attrs.get("input_size") != list(config.input_size):
            raise StorageError(
                f"study '{config.name}' holds {attrs.get('model')} at input "
                f"{attrs.get('input_size')}, not {config.model} at {list(config.input_size)}; "
                "use another --study name"
            )
        stored = tuple(attrs.get("objectives", OBJECTIVES))
        if stored != config.objectives:
            with_ = "with" if "latency_ms" in stored else "without"
            raise StorageError(
                f"study '{config.name}' was made {with_} a latency objective; use the same "
                "settings or another --study name"
            )
        return study
    if not create:
        raise StorageError(f"no study '{config.name}' in that storage")
    directions = list(DIRECTIONS) + ["minimize"] * (len(config.objectives) - len(DIRECTIONS))
    study = optuna.create_study(
        study_name=config.name, storage=storage, directions=directions, load_if_exists=True
    )
    study.set_user_attr("objectives", list(config.objectives))
    for key, value in (
        ("model", config.model),
        ("input_size", list(config.input_size)),
        ("timm_kwargs", dict(config.timm_kwargs)),
        ("ranges", config.ranges.to_dict()),
        ("sampler", config.sampler),
        ("seed", config.seed),
        ("widthsearch", "study"),
    ):
        study.set_user_attr(key, value)
    if space is not None:
        study.set_user_attr("base_params", space.params())
        study.set_user_attr("base_macs", space.macs())
        study.set_user_attr("base_widths", list(space.base_widths))
        study.set_user_attr("fixed_groups", [g.id for g in space.groups if g.fixed])
        if hardware is not None:
            for key, value in hardware.attrs(space).items():
                study.set_user_attr(key, value)
    return study


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=20)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise StudyConfigError(f"unknown sampler '{name}'")


# ----------------------------------------------------------------------------- hardware
@dataclass(frozen=True)
class HardwareModels:
    """A study's latency and activation-memory models (None where it needs none)."""

    latency: LatencyModel | None = None
    memory: ActivationMemory | None = None
    note: str = ""

    @property
    def costs(self) -> dict[str, Posynomial]:
        out = {}
        if self.latency is not None:
            out["latency"] = self.latency.cost
        if self.memory is not None:
            out["memory"] = self.memory.cost
        return out

    def attrs(self, space: WidthSpace) -> dict[str, Any]:
        """Study attributes: base figures and the latency model, so that fronts and reports
        show latency without profiling again."""
        out: dict[str, Any] = {}
        if self.latency is not None:
            out["base_latency_ms"] = self.latency(space.base_widths)
            out["latency_model"] = {
                "note": self.note,
                "device": self.latency.device.to_dict(),
                "terms": [[c, [list(p) for p in m]] for m, c in self.latency.cost.terms],
            }
        if self.memory is not None:
            out["base_memory_bytes"] = self.memory(space.base_widths)
            out["memory_batch_size"] = self.memory.batch_size
        return out


def hardware_models(
    config: StudyConfig, space: WidthSpace, progress: Callable[[str], None] | None = None
) -> HardwareModels:
    """The latency model (``config.hardware``'s profile, or a cached quick profile) when the
    study has a latency objective, and the memory model when it has a memory range."""
    from .latency import resolve_latency_model
    from .memory import activation_memory

    hw = config.hardware
    latency = memory = None
    note = ""
    batch = hw.batch_size
    if "latency_ms" in config.objectives:
        resolved = resolve_latency_model(
            space,
            profile=hw.profile,
            device=hw.device,
            threads=hw.threads,
            batch_size=hw.batch_size,
            progress=progress,
        )
        latency, note = resolved.model, resolved.note
        batch = latency.device.batch_size
    if config.ranges.memory is not None:
        memory = activation_memory(space, batch_size=batch or 1)
    return HardwareModels(latency, memory, note)


def stored_latency(attrs: dict[str, Any]) -> Posynomial | None:
    """The latency posynomial a study stored (see :meth:`HardwareModels.attrs`), or None."""
    from .cost import Posynomial

    model = attrs.get("latency_model")
    if not model:
        return None
    return Posynomial(tuple((tuple(tuple(p) for p in m), c) for c, m in model["terms"]))


# ----------------------------------------------------------------------------- objective
def widths_key(widths: Sequence[int]) -> str:
    return hashlib.sha1(",".join(map(str, widths)).encode()).hexdigest()[:16]


@dataclass
class Objective:
    """One trial: sample a mix, re-solve, round, record. Built once per process."""

    space: WidthSpace
    config: StudyConfig
    program: SynExpProgram
    hardware: HardwareModels = HardwareModels()
    seen: dict[str, int] = field(default_factory=dict)
    """widths key -> first trial number, for this process (across workers the front dedups)."""

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        r = self.config.ranges
        mix: dict[str, Any] = {"mode": trial.suggest_categorical("mode", list(r.mode))}
        mix["params_ratio"] = trial.suggest_float("params_ratio", *r.params) if r.params else None
        mix["macs_ratio"] = trial.suggest_float("macs_ratio", *r.macs) if r.macs else None
        mix["min_width"] = trial.suggest_float("min_width", *r.min_width, log=True)
        mix["max_width"] = (
            trial.suggest_float("max_width", *r.max_width) if mix["mode"] == "preconfig" else 1.0
        )
        mix["divisor"] = trial.suggest_categorical("divisor", list(r.divisor))
        if r.latency:
            mix["latency_ratio"] = trial.suggest_float("latency_ratio", *r.latency)
        if r.memory:
            mix["memory_ratio"] = trial.suggest_float("memory_ratio", *r.memory)
        return mix

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        import optuna

        mix = self.sample(trial)  # the trial's params are the mix
        space = self.space
        budgets = Budgets(
            params=None
            if mix["params_ratio"] is None
            else math.floor(mix["params_ratio"] * space.params()),
            macs=None
            if mix["macs_ratio"] is None
            else math.floor(mix["macs_ratio"] * space.macs()),
            latency=None
            if mix.get("latency_ratio") is None or self.hardware.latency is None
            else mix["latency_ratio"] * self.hardware.latency(space.base_widths),
            memory=None
            if mix.get("memory_ratio") is None or self.hardware.memory is None
            else math.floor(mix["memory_ratio"] * self.hardware.memory(space.base_widths)),
        )
        lo, hi = mix["min_width"], mix["max_width"]  # min > max is pruned (BoundsError), not bent
        try:
            solution = self.program.solve(budgets, min_width=lo, max_width=hi)
            widths, _ = round_on_grid(
                space,
                solution.multipliers,
                budgets,
                divisor=mix["divisor"],
                min_width=lo,
                max_width=hi,
                costs=self.program.costs,
            )
        except (InfeasibleBudgetError, RoundingError) as exc:
            trial.set_user_attr("infeasible", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        # values hold log SynExp, params and MACs; only the widths need an attribute
        trial.set_user_attr("widths", list(widths))
        key = widths_key(widths)
        first = self.seen.setdefault(key, trial.number)
        if first != trial.number:
            trial.set_user_attr("duplicate_of", first)
        if self.hardware.memory is not None:
            trial.set_user_attr("memory_bytes", self.hardware.memory(widths))
        values = (log_synexp(space, widths), space.params(widths), space.macs(widths))
        if "latency_ms" in self.config.objectives:
            return (*values, self.hardware.latency(widths))
        return values

    def load_seen(self, study: optuna.Study) -> None:
        """Width vectors already in the study; later ones are duplicates of the first."""
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        for t in sorted(complete, key=lambda t: t.number):
            if "widths" in t.user_attrs:
                self.seen.setdefault(widths_key(t.user_attrs["widths"]), t.number)


# ---------------------------------------------------------------------------------- front
def front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal complete trials (max log SynExp, min params, MACs and, where it is an
    objective, latency), duplicates out."""
    import optuna

    seen: set[str] = set()
    points = []
    for t in sorted(
        study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
        key=lambda t: t.number,
    ):
        if "duplicate_of" in t.user_attrs or "widths" not in t.user_attrs or t.values is None:
            continue
        key = widths_key(t.user_attrs["widths"])
        if key in seen:  # a duplicate two workers found at once
            continue
        seen.add(key)
        points.append(t)
    objs = [(-t.values[0], *t.values[1:]) for t in points]
    n = len(objs[0]) if objs else 0
    keep = []
    for i, a in enumerate(objs):
        dominated = any(
            all(b[k] <= a[k] for k in range(n)) and any(b[k] < a[k] for k in range(n))
            for j, b in enumerate(objs)
            if j != i
        )
        if not dominated:
            keep.append(points[i])
    return keep


def trial_summary(t: optuna.trial.FrozenTrial, space_base: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready description of a finished trial (``space_base``: the base's params, MACs
    and, where the study has them, latency_ms and memory_bytes)."""
    a = t.user_attrs
    log_s, params, macs = t.values[:3] if t.values else (None, None, None)
    latency = t.values[3] if t.values and len(t.values) > 3 else None
    memory = a.get("memory_bytes")
    base_lat, base_mem = space_base.get("latency_ms"), space_base.get("memory_bytes")
    return {
        "latency_ms": latency,
        "latency_ratio": None if latency is None or not base_lat else latency / base_lat,
        "memory_bytes": memory,
        "memory_ratio": None if memory is None or not base_mem else memory / base_mem,
        "number": t.number,
        "state": t.state.name,
        "log_synexp": log_s,
        "params": None if params is None else int(params),
        "macs": None if macs is None else int(macs),
        "params_ratio": None if params is None else params / space_base["params"],
        "macs_ratio": None if macs is None else macs / space_base["macs"],
        "mix": dict(t.params),
        "widths": a.get("widths"),
        "duplicate_of": a.get("duplicate_of"),
        "infeasible": a.get("infeasible"),
    }


def load_front(study_name: str, storage_url: str | None) -> dict[str, Any]:
    """The front of a stored study, with what the ``front`` command prints (no timm needed)."""
    storage = open_storage(storage_url)
    if not _exists(storage, study_name):
        names = ", ".join(s.study_name for s in storage.get_all_studies()) or "none"
        raise StorageError(f"no study '{study_name}' in that storage (studies: {names})")
    study = _load(storage, study_name)
    attrs = study.user_attrs
    if attrs.get("widthsearch") != "study":
        raise StorageError(f"study '{study_name}' was not made by widthsearch search")
    base = {
        "params": attrs["base_params"],
        "macs": attrs["base_macs"],
        "latency_ms": attrs.get("base_latency_ms"),
        "memory_bytes": attrs.get("base_memory_bytes"),
    }
    return {
        "study": study_name,
        "model": attrs["model"],
        "input_size": attrs["input_size"],
        "objectives": attrs.get("objectives", list(OBJECTIVES)),
        "base_params": base["params"],
        "base_macs": base["macs"],
        "base_latency_ms": base["latency_ms"],
        "base_memory_bytes": base["memory_bytes"],
        "latency_model": (attrs.get("latency_model") or {}).get("note"),
        "base_widths": attrs.get("base_widths"),
        "fixed_groups": attrs.get("fixed_groups", []),
        "trials": finished_count(study),
        "front": [trial_summary(t, base) for t in front(study)],
    }


# ------------------------------------------------------------------------------------ run
def finished_count(study: optuna.Study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _prepare(
    config: StudyConfig,
    storage_url: str | None,
    seed: int | None,
    space: WidthSpace | None = None,
    hardware: HardwareModels | None = None,
) -> tuple[optuna.Study, Objective]:
    """A process's study handle and objective (its own width space, program and connection;
    a worker loads the latency model from the profile or the cache the parent filled)."""
    import optuna

    from .space import WidthSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if space is None:
        kwargs = dict(config.timm_kwargs)
        space = WidthSpace.from_timm(config.model, input_size=config.input_size, **kwargs)
    if hardware is None:
        hardware = hardware_models(config, space)
    costs = hardware.costs
    program = SynExpProgram(space, latency=costs.get("latency"), memory=costs.get("memory"))
    objective = Objective(space, config, program, hardware)
    study = open_study(config, open_storage(storage_url))
    objective.load_seen(study)
    study.sampler = make_sampler(config.sampler, seed)
    objective.program.solve(  # compile the program now, not in the first trial
        Budgets(params=space.params()), min_width=config.ranges.min_width[0], max_width=1.0
    )
    return study, objective


def _run(
    study: optuna.Study,
    objective: Objective,
    n_trials: int,
    timeout: float | None,
    callback: Callable | None = None,
) -> None:
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        callbacks=[callback] if callback else None,
        gc_after_trial=False,
    )


def _worker(
    config: StudyConfig,
    storage_url: str | None,
    n_trials: int,
    seed: int | None,
    timeout: float | None,
    ready: Any,
) -> None:
    """A worker process: start up, tell the parent, then run its share of the trials."""
    study, objective = _prepare(config, storage_url, seed)
    ready.set()
    _run(study, objective, n_trials, timeout)


@dataclass(frozen=True)
class SearchResult:
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


def run_search(
    config: StudyConfig,
    storage_url: str | None = None,
    *,
    workers: int = 1,
    timeout: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Run the study up to ``config.trials`` finished trials in total (a re-run resumes).

    ``workers`` processes share the study; each builds its own width space and program.
    """
    import optuna

    from .space import WidthSpace

    if workers < 1:
        raise StudyConfigError(f"workers must be at least 1, got {workers}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the study's own lines, not Optuna's
    storage = open_storage(storage_url)
    if _exists(storage, config.name):
        open_study(config, storage, create=False)  # checks model and input size before any work
    space = WidthSpace.from_timm(config.model, input_size=config.input_size, **config.timm_kwargs)
    hardware = hardware_models(config, space, progress=_stderr if progress else None)
    study = open_study(config, storage, space=space, hardware=hardware)
    done = finished_count(study)
    remaining = max(0, config.trials - done)
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    start = time.perf_counter()
    if remaining:
        # spawn, not fork: a forked child deadlocks in OpenMP once the parent has run torch
        ctx = multiprocessing.get_context("spawn")
        procs = []
        for i, share in enumerate(shares[1:], 1):
            if share:
                seed = None if config.seed is None else config.seed + i
                ready = ctx.Event()
                args = (config, storage_url, share, seed, timeout, ready)
                p = ctx.Process(target=_worker, args=args)
                p.start()
                procs.append((p, ready))
        own = _prepare(config, storage_url, config.seed, space, hardware) if shares[0] else None
        for p, ready in procs:  # wait for their start-up (imports, width space): shares overlap
            while not ready.wait(0.5) and p.is_alive():
                pass
        procs = [p for p, _ in procs]
        callback = _ProgressBar(config.trials, done) if progress else None
        try:
            if own is not None:
                _run(*own, shares[0], timeout, callback)
        finally:
            for p in procs:
                p.join()
            if callback:
                callback.close()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            raise WidthSearchError(f"{len(failed)} worker process(es) failed (exit {failed[0]})")
    seconds = time.perf_counter() - start
    report = load_front(config.name, storage_url)
    return SearchResult(
        study_name=config.name,
        storage=storage_url or DEFAULT_STORAGE,
        trials=report["trials"],
        new_trials=report["trials"] - done,
        seconds=seconds,
        report=report,
    )


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


class _ProgressBar:
    """A tqdm bar on stderr: finished trials, trials/s and the current front size.

    The front is recomputed at most once a second: it reads every trial from storage.
    """

    def __init__(self, total: int, done: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit="trial", desc="search", leave=True)
        self.start, self.count, self.shown = time.perf_counter(), 0, 0.0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.count += 1
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.shown >= 1.0:
            self.shown = now
            self.bar.n = finished_count(study)  # other workers' trials too
            rate = self.count / max(now - self.start, 1e-9)
            self.bar.set_postfix(rate=f"{rate:.1f}/s", front=len(front(study)), refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


__all__ = [
    "DEFAULT_STORAGE",
    "DIRECTIONS",
    "OBJECTIVES",
    "HardwareModels",
    "hardware_models",
    "stored_latency",
    "Objective",
    "SearchResult",
    "StorageError",
    "front",
    "load_front",
    "make_sampler",
    "open_storage",
    "open_study",
    "run_search",
    "trial_summary",
    "widths_key",
]
