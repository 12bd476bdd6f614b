"""Optuna search over constraint mixes: each trial is one re-solve of the prebuilt program.

A trial takes a constraint mix (budget ratios, width bounds, divisor, mode), re-solves the
width space's :class:`~widthsearch.solve.SynExpProgram` and rounds, and records the mix (the
trial's params), the widths and log SynExp, params and MACs (the objectives: maximize,
minimize, minimize), and predicted latency on the study's device (minimize) when the study has
a latency model (``latency = true`` or a latency range); latency and activation-memory budget
ratios join the mix when their ranges are set. A mix that lands on widths an earlier trial
found is marked ``duplicate_of`` and kept out of the front; an infeasible mix is pruned with
its reason.

Samplers. Every trial is already the SynExp optimum of its own budgets, so nearly every trial
is Pareto-optimal and the front is a surface over the budget space: what a sampler has to do is
cover that space evenly, not home in on a region. The default, ``qmc``, gives trial number n
point n of a scrambled Sobol sequence over the mix ranges (seeded, the seed kept in the study):
the first 2^k trials are balanced in every coordinate, trial numbers are unique across workers
and machines so no two trials take the same point, and a resumed study continues the sequence.
It costs nothing per trial. ``tpe`` and ``nsga2`` (Optuna's model-based samplers) and
``random`` run through :meth:`optuna.study.Study.optimize`; TPE's multi-objective cost grows
with the trials (about 1 trial/s by trial 1,500). ``benchmarks/bench_search.py`` compares them.

Storage: :mod:`widthsearch.search.storage` (SQLite by default, journal files, PostgreSQL). Fronts:
:mod:`widthsearch.search.front` (the whole front, and the thinned one that is shown).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from widthsearch.errors import SearchInterrupted, WidthSearchError
from widthsearch.hardware import activation_memory, resolve_latency_model
from widthsearch.search.front import (
    DEFAULT_ROWS,
    EPS_STEPS,
    choose_eps,
    front,
    pareto_mask,
    shown_front,
    thin_front,
    trial_summary,
    widths_key,
)
from widthsearch.search.storage import (
    DEFAULT_STORAGE,
    StorageError,
    find_study,
    missing_study,
    open_storage,
    storage_name,
)
from widthsearch.solve import solved_widths
from widthsearch.solve.program import Budgets, InfeasibleBudgetError, SolverError, SynExpProgram
from widthsearch.solve.rounding import RoundingError, round_on_grid
from widthsearch.solve.synexp import log_synexp
from widthsearch.studyfile import DEFAULT_SAMPLER, Ranges, StudyConfig, StudyConfigError

if TYPE_CHECKING:
    import optuna

    from widthsearch.hardware import ActivationMemory, LatencyModel
    from widthsearch.space.cost import Posynomial
    from widthsearch.space.width_space import WidthSpace

OBJECTIVES = ("log_synexp", "params", "macs")
DIRECTIONS = ("maximize", "minimize", "minimize")
"""Directions of log SynExp, params and MACs; a latency objective adds one more minimize."""


# ------------------------------------------------------------------------------- settings
def _json(value: Any) -> Any:
    """``value`` as the storage gives it back (JSON: tuples become lists)."""
    return json.loads(json.dumps(value))


def study_settings(config: StudyConfig) -> dict[str, Any]:
    """What defines a study: a re-run must match these (None for sampler/seed: any)."""
    return {
        "model": config.model,
        "input_size": _json(list(config.input_size)),
        "timm_kwargs": _json(dict(config.timm_kwargs)),
        "ranges": _json(config.ranges.to_dict()),
        "sampler": config.sampler,
        "seed": config.seed,
        "objectives": list(config.objectives),
    }


def setting_differences(config: StudyConfig, attrs: dict[str, Any]) -> list[str]:
    """Each setting of ``config`` that differs from a stored study's, as 'key stored (not
    given)'. Sampler and seed count only when ``config`` sets them and the study recorded them.
    """
    wanted = study_settings(config)
    diffs = []
    for key in ("model", "input_size", "timm_kwargs"):
        if attrs.get(key, {} if key == "timm_kwargs" else None) != wanted[key]:
            diffs.append(f"{key} {_show(attrs.get(key))} (not {_show(wanted[key])})")
    stored_ranges = attrs.get("ranges") or {}
    for key, value in wanted["ranges"].items():
        if stored_ranges.get(key) != value:
            diffs.append(f"ranges.{key} {_show(stored_ranges.get(key))} (not {_show(value)})")
    for key in ("sampler", "seed"):
        if wanted[key] is not None and key in attrs and attrs[key] != wanted[key]:
            diffs.append(f"{key} {_show(attrs[key])} (not {_show(wanted[key])})")
    stored = list(attrs.get("objectives", OBJECTIVES))
    if stored != wanted["objectives"]:
        diffs.append(f"objectives {_show(stored)} (not {_show(wanted['objectives'])})")
    return diffs


def _show(value: Any) -> str:
    if value is None or value is False:
        return "false" if value is False else "none"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def check_settings(config: StudyConfig, study: optuna.Study, url: str | None) -> None:
    """Refuse to run ``config`` on a stored study made with other settings (before any trial).

    Raises:
        StorageError: one line naming what differs and how to go on.
    """
    attrs = study.user_attrs
    if attrs.get("widthsearch") != "study":
        raise StorageError(
            f"study '{config.name}' in {storage_name(url)} was not made by widthsearch search; "
            "use another --study name"
        )
    diffs = setting_differences(config, attrs)
    if diffs:
        raise StorageError(
            f"study '{config.name}' in {storage_name(url)} holds {attrs.get('model')} with other "
            f"settings: {'; '.join(diffs)}. It is left as it is: re-run with its settings to "
            "continue it, or give a new --study name"
        )


def open_study(
    config: StudyConfig,
    storage: Any,
    *,
    create: bool = True,
    space: WidthSpace | None = None,
    url: str | None = None,
    hardware: HardwareModels | None = None,
) -> optuna.Study:
    """The study ``config.name``: created with its settings (and ``space``'s base, and the
    latency and memory models in ``hardware``), or loaded and checked against them
    (:func:`check_settings`).

    Raises:
        StorageError: no such study (``create=False``), or it was made with other settings.
    """
    import optuna

    study = find_study(storage, config.name)
    if study is not None and not (create and _unfinished(study)):
        check_settings(config, study, url)
        return study
    if study is None:
        if not create:
            raise missing_study(config.name, storage, url)
        directions = list(DIRECTIONS) + ["minimize"] * (len(config.objectives) - len(DIRECTIONS))
        study = optuna.create_study(study_name=config.name, storage=storage, directions=directions)
    # a new study, or one killed between its creation and its settings (it has no trials)
    sampler = config.sampler or DEFAULT_SAMPLER
    seed = config.seed
    if seed is None and sampler == "qmc":  # all workers and every resume share one sequence
        seed = random.SystemRandom().randrange(2**31)
    settings = {**study_settings(config), "sampler": sampler, "seed": seed}
    if space is not None:
        settings["base_params"] = space.params()
        settings["base_macs"] = space.macs()
        settings["base_widths"] = list(space.base_widths)
        settings["fixed_groups"] = [g.id for g in space.groups if g.fixed]
        if hardware is not None:
            settings.update(hardware.attrs(space))
    for key, value in {**settings, "widthsearch": "study"}.items():  # the mark comes last
        study.set_user_attr(key, value)
    return study


def _unfinished(study: optuna.Study) -> bool:
    """A study without its widthsearch settings and without trials."""
    return "widthsearch" not in study.user_attrs and not study.get_trials(deepcopy=False)


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler ``name`` (``qmc`` does not use one: see :class:`SobolMixes`)."""
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
            solved_widths=solved_widths,
            progress=progress,
        )
        latency, note = resolved.model, resolved.note
        batch = latency.device.batch_size
    if config.ranges.memory is not None:
        memory = activation_memory(space, batch_size=batch or 1)
    return HardwareModels(latency, memory, note)


def stored_latency(attrs: dict[str, Any]) -> Posynomial | None:
    """The latency posynomial a study stored (see :meth:`HardwareModels.attrs`), or None."""
    from widthsearch.space.cost import Posynomial

    model = attrs.get("latency_model")
    if not model:
        return None
    return Posynomial(tuple((tuple(tuple(p) for p in m), c) for c, m in model["terms"]))


# ----------------------------------------------------------------------------- the mixes
def mix_distributions(ranges: Ranges, mode: str | None = None) -> dict[str, Any]:
    """The Optuna distributions of a mix's params (``max_width`` for PreConfig only)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists: dict[str, Any] = {"mode": CategoricalDistribution(list(ranges.mode))}
    if ranges.params:
        dists["params_ratio"] = FloatDistribution(*ranges.params)
    if ranges.macs:
        dists["macs_ratio"] = FloatDistribution(*ranges.macs)
    dists["min_width"] = FloatDistribution(*ranges.min_width, log=True)
    if mode in (None, "preconfig"):
        dists["max_width"] = FloatDistribution(*ranges.max_width)
    dists["divisor"] = CategoricalDistribution(list(ranges.divisor))
    if ranges.latency:
        dists["latency_ratio"] = FloatDistribution(*ranges.latency)
    if ranges.memory:
        dists["memory_ratio"] = FloatDistribution(*ranges.memory)
    return dists


def _full_mix(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's params as the mix the objective solves (absent budgets: unconstrained)."""
    return {
        "mode": params["mode"],
        "params_ratio": params.get("params_ratio"),
        "macs_ratio": params.get("macs_ratio"),
        "min_width": params["min_width"],
        "max_width": params.get("max_width", 1.0) if params["mode"] == "preconfig" else 1.0,
        "divisor": params["divisor"],
        "latency_ratio": params.get("latency_ratio"),
        "memory_ratio": params.get("memory_ratio"),
    }


class SobolMixes:
    """The ``qmc`` sampler: trial number n takes point n of a scrambled Sobol sequence.

    One coordinate per range that varies (budgets first: Sobol's first coordinates are its
    most even), mapped linearly (``min_width`` logarithmically) or, for choices, by equal
    slices of [0, 1). ``max_width`` always has its coordinate, so the points do not depend on
    the mode. Trial numbers are unique across every worker of a study, so no point is taken
    twice, and a resumed study goes on where it stopped.
    """

    ORDER = (
        "params_ratio",
        "macs_ratio",
        "latency_ratio",
        "memory_ratio",
        "mode",
        "min_width",
        "max_width",
        "divisor",
    )

    def __init__(self, ranges: Ranges, seed: int) -> None:
        from scipy.stats import qmc

        dists = mix_distributions(ranges)
        self.fixed: dict[str, Any] = {}
        self.coords: list[tuple[str, Any]] = []
        for name in self.ORDER:
            if name not in dists:
                continue
            d = dists[name]
            choices = getattr(d, "choices", None)
            if (choices is not None and len(choices) == 1) or (choices is None and d.low == d.high):
                self.fixed[name] = choices[0] if choices is not None else d.low
            else:
                self.coords.append((name, d))
        self.engine = qmc.Sobol(len(self.coords), scramble=True, seed=seed) if self.coords else None
        self.next = 0

    def params(self, number: int) -> dict[str, Any]:
        """The params of trial ``number`` (``max_width`` only for PreConfig, as suggested)."""
        values = dict(self.fixed)
        if self.engine is not None:
            if number != self.next:
                self.engine.reset()
                if number:
                    self.engine.fast_forward(number)
            point = self.engine.random(1)[0]
            self.next = number + 1
            for (name, d), u in zip(self.coords, point, strict=True):
                values[name] = _from_unit(d, float(u))
        if values["mode"] != "preconfig":
            values.pop("max_width", None)
        return {k: values[k] for k in self.ORDER if k in values}


def _from_unit(d: Any, u: float) -> Any:
    choices = getattr(d, "choices", None)
    if choices is not None:
        return choices[min(int(u * len(choices)), len(choices) - 1)]
    if d.log:
        return math.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
    return d.low + u * (d.high - d.low)


# ----------------------------------------------------------------------------- objective
class Infeasible(Exception):
    """A mix without widths: its budgets are out of reach of its bounds, or (rarely) the
    solver failed on it. The trial is pruned, with the reason in the user attribute ``key``."""

    def __init__(self, message: str, key: str = "infeasible") -> None:
        super().__init__(message)
        self.key = key


@dataclass
class Objective:
    """One trial: take a mix, re-solve, round, record. Built once per process."""

    space: WidthSpace
    config: StudyConfig
    program: SynExpProgram
    hardware: HardwareModels = HardwareModels()
    seen: dict[str, int] = field(default_factory=dict)
    """widths key -> first trial number, for this process (across workers the front dedups)."""

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """An Optuna sampler's mix (``max_width`` is asked for PreConfig only)."""
        r = self.config.ranges
        params: dict[str, Any] = {"mode": trial.suggest_categorical("mode", list(r.mode))}
        if r.params:
            params["params_ratio"] = trial.suggest_float("params_ratio", *r.params)
        if r.macs:
            params["macs_ratio"] = trial.suggest_float("macs_ratio", *r.macs)
        params["min_width"] = trial.suggest_float("min_width", *r.min_width, log=True)
        if params["mode"] == "preconfig":
            params["max_width"] = trial.suggest_float("max_width", *r.max_width)
        params["divisor"] = trial.suggest_categorical("divisor", list(r.divisor))
        if r.latency:
            params["latency_ratio"] = trial.suggest_float("latency_ratio", *r.latency)
        if r.memory:
            params["memory_ratio"] = trial.suggest_float("memory_ratio", *r.memory)
        return params

    def evaluate(self, params: dict[str, Any]) -> tuple[list[int], tuple[float, ...]]:
        """Solve and round the mix ``params``: (widths, (log SynExp, params, MACs[, latency])).

        Raises:
            Infeasible: the mix's budgets are out of reach of its bounds, or the solver
                failed on it (one mix of thousands must not end a search).
        """
        mix = _full_mix(params)
        space = self.space
        budgets = Budgets(
            params=None
            if mix["params_ratio"] is None
            else math.floor(mix["params_ratio"] * space.params()),
            macs=None
            if mix["macs_ratio"] is None
            else math.floor(mix["macs_ratio"] * space.macs()),
            latency=None
            if mix["latency_ratio"] is None or self.hardware.latency is None
            else mix["latency_ratio"] * self.hardware.latency(space.base_widths),
            memory=None
            if mix["memory_ratio"] is None or self.hardware.memory is None
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
            raise Infeasible(str(exc)) from None
        except SolverError as exc:
            raise Infeasible(str(exc), "solver_failed") from None
        values = (log_synexp(space, widths), space.params(widths), space.macs(widths))
        if "latency_ms" in self.config.objectives:
            values = (*values, self.hardware.latency(widths))
        return list(widths), values

    def attrs(self, number: int, widths: Sequence[int]) -> dict[str, Any]:
        """The user attributes of a feasible trial: its widths, its activation memory where the
        study budgets it, and ``duplicate_of`` the first trial with the same widths
        (:meth:`remember` that trial once it is stored)."""
        first = self.seen.get(widths_key(widths), number)
        out = {"widths": list(widths)} | ({"duplicate_of": first} if first != number else {})
        if self.hardware.memory is not None:
            out["memory_bytes"] = self.hardware.memory(widths)
        return out

    def remember(self, number: int, widths: Sequence[int]) -> None:
        self.seen.setdefault(widths_key(widths), number)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        """The objective for :meth:`optuna.study.Study.optimize` (the Optuna samplers)."""
        import optuna

        params = self.sample(trial)
        try:
            widths, values = self.evaluate(params)
        except Infeasible as exc:
            trial.set_user_attr(exc.key, str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        for key, value in self.attrs(trial.number, widths).items():
            trial.set_user_attr(key, value)
        self.remember(trial.number, widths)
        return values

    def load_seen(self, study: optuna.Study) -> None:
        """Width vectors already in the study; later ones are duplicates of the first."""
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        for t in sorted(complete, key=lambda t: t.number):
            if "widths" in t.user_attrs:
                self.seen.setdefault(widths_key(t.user_attrs["widths"]), t.number)


# ---------------------------------------------------------------------------------- front
def load_search_study(study_name: str, storage_url: str | None) -> optuna.Study:
    """A stored widthsearch study, only read: no storage or study is created.

    Raises:
        StorageError: no such storage or study (naming the storage and the studies it holds),
            or a study that ``search`` did not make.
    """
    storage = open_storage(storage_url, create=False)
    study = find_study(storage, study_name)
    if study is None:
        raise missing_study(study_name, storage, storage_url)
    if study.user_attrs.get("widthsearch") != "study":
        raise StorageError(
            f"study '{study_name}' in {storage_name(storage_url)} was not made by widthsearch "
            "search"
        )
    return study


def load_front(
    study_name: str,
    storage_url: str | None,
    *,
    eps: float | None = None,
    rows: int = DEFAULT_ROWS,
    study: optuna.Study | None = None,
) -> dict[str, Any]:
    """The front of a stored study, with what the ``front`` command prints (no timm needed).

    ``front`` holds the whole Pareto front; ``shown`` the trial numbers of its thinned version
    (:func:`thin_front` with ``eps``, by default the finest step that fits in ``rows``), and
    ``eps`` that step. Reading never creates a storage or a study.
    """
    study = study or load_search_study(study_name, storage_url)
    attrs = study.user_attrs
    base = {
        "params": attrs["base_params"],
        "macs": attrs["base_macs"],
        "latency_ms": attrs.get("base_latency_ms"),
        "memory_bytes": attrs.get("base_memory_bytes"),
    }
    full = [trial_summary(t, base) for t in front(study)]
    if eps is None:
        eps = choose_eps(full, rows)
    return {
        "study": study_name,
        "storage": storage_name(storage_url),
        "model": attrs["model"],
        "input_size": attrs["input_size"],
        "timm_kwargs": attrs.get("timm_kwargs") or {},
        "sampler": attrs.get("sampler"),
        "seed": attrs.get("seed"),
        "objectives": attrs.get("objectives", list(OBJECTIVES)),
        "base_params": base["params"],
        "base_macs": base["macs"],
        "base_latency_ms": base["latency_ms"],
        "base_memory_bytes": base["memory_bytes"],
        "latency_model": (attrs.get("latency_model") or {}).get("note"),
        "base_widths": attrs.get("base_widths"),
        "fixed_groups": attrs.get("fixed_groups", []),
        "trials": finished_count(study),
        "front": full,
        "eps": eps,
        "shown": [t["number"] for t in thin_front(full, eps)],
    }


# ------------------------------------------------------------------------------------ run
FINISHED = ("COMPLETE", "PRUNED")


def finished_count(study: optuna.Study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


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


class _QuietFailures(logging.Filter):
    """Drop Optuna's "Trial N failed" warnings (with a traceback): the error itself reaches
    the caller, which the CLI prints as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith("Trial ") and " failed " in record.getMessage())


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietFailures) for f in log.filters):
        log.addFilter(_QuietFailures())


@dataclass
class _Process:
    """One process's share of a search: its storage handle, study, objective and sampler."""

    storage: Any
    study: optuna.Study
    study_id: int
    objective: Objective
    seed: int | None


def _prepare(
    config: StudyConfig,
    storage_url: str | None,
    seed: int | None,
    space: WidthSpace | None = None,
    hardware: HardwareModels | None = None,
) -> _Process:
    """A process's handle (its own width space, program and connection; a worker loads the
    latency model from the profile or the cache the parent filled)."""
    from widthsearch.space.width_space import WidthSpace

    _quiet_optuna()
    if space is None:
        kwargs = dict(config.timm_kwargs)
        space = WidthSpace.from_timm(config.model, input_size=config.input_size, **kwargs)
    if hardware is None:
        hardware = hardware_models(config, space)
    costs = hardware.costs
    program = SynExpProgram(space, latency=costs.get("latency"), memory=costs.get("memory"))
    objective = Objective(space, config, program, hardware)
    storage = open_storage(storage_url)
    study = open_study(config, storage, create=False, url=storage_url)
    objective.load_seen(study)
    objective.program.solve(  # compile the program now, not in the first trial
        Budgets(params=space.params()), min_width=config.ranges.min_width[0], max_width=1.0
    )
    study_id = storage.get_study_id_from_name(config.name)
    return _Process(storage, study, study_id, objective, seed)


def _run(proc: _Process, n_trials: int, stop: _Stop, on_trial: Callable | None = None) -> None:
    """Run up to ``n_trials`` trials in this process until ``stop`` says so."""
    if proc.objective.config.sampler == "qmc":
        _run_qmc(proc, n_trials, stop, on_trial)
        return
    study = proc.study
    study.sampler = make_sampler(proc.objective.config.sampler, proc.seed)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial()
        if stop():
            study.stop()

    if not stop():
        study.optimize(
            proc.objective, n_trials=n_trials, callbacks=[callback], gc_after_trial=False
        )


def _run_qmc(proc: _Process, n_trials: int, stop: _Stop, on_trial: Callable | None) -> None:
    """The ``qmc`` loop: trial number n solves Sobol point n and is written as it finishes.

    Only storage calls (no Optuna sampler, no reads of other trials): a trial costs its solve
    and a handful of small writes, the same at trial 2,000 as at trial 1.
    """
    from optuna.trial import TrialState

    storage, study_id, objective = proc.storage, proc.study_id, proc.objective
    ranges = objective.config.ranges
    sobol = SobolMixes(ranges, objective.config.seed or 0)
    for _ in range(n_trials):
        if stop():
            return
        trial_id = storage.create_new_trial(study_id)
        try:
            number = storage.get_trial_number_from_id(trial_id)
            params = sobol.params(number)
            try:
                widths, values = objective.evaluate(params)
                attrs = objective.attrs(number, widths)
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
                objective.remember(number, widths)
        except BaseException:  # an error, or a second Ctrl-C: the trial fails
            with contextlib.suppress(Exception):  # unless the storage itself is gone
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            raise
        if on_trial:
            on_trial()


def _worker(
    config: StudyConfig,
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
            proc = _prepare(config, storage_url, seed)
            ready.set()
            stop.start(timeout)
            _run(proc, n_trials, stop)
    except KeyboardInterrupt:  # a second Ctrl-C: the parent says what happened
        sys.exit(130)


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


def _resolve(config: StudyConfig, study: optuna.Study) -> StudyConfig:
    """``config`` with the study's sampler and seed where it leaves them open (recording them
    on a study made before they were recorded)."""
    from widthsearch.studyfile import DEFAULT_SAMPLER

    attrs = study.user_attrs
    sampler = config.sampler or attrs.get("sampler") or DEFAULT_SAMPLER
    seed = config.seed if config.seed is not None else attrs.get("seed")
    if seed is None and sampler == "qmc":
        seed = random.SystemRandom().randrange(2**31)
        study.set_user_attr("seed", seed)
    if "sampler" not in attrs:
        study.set_user_attr("sampler", sampler)
    return replace(config, sampler=sampler, seed=seed)


def run_search(
    config: StudyConfig,
    storage_url: str | None = None,
    *,
    workers: int = 1,
    timeout: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Run the study up to ``config.trials`` finished trials in total (a re-run resumes).

    ``workers`` processes share the study; each builds its own width space and program. A
    stored study is checked against ``config`` before anything runs (:func:`check_settings`).

    Raises:
        StorageError: the storage cannot be used, or the study has other settings.
        SearchInterrupted: Ctrl-C; the trials that were running finished and are stored.
    """
    from widthsearch.space.width_space import WidthSpace

    if workers < 1:
        raise StudyConfigError(f"workers must be at least 1, got {workers}")
    _quiet_optuna()  # the study's own lines, not Optuna's
    storage = open_storage(storage_url)
    existing = find_study(storage, config.name)
    if existing is not None and not _unfinished(existing):
        check_settings(config, existing, storage_url)  # before any work, and nothing written
    # spawn, not fork: a forked child deadlocks in OpenMP once the parent has run torch
    ctx = multiprocessing.get_context("spawn")
    event = ctx.Event()
    with _Stop(event) as stop:  # from here a Ctrl-C lets the step it lands in finish
        space = WidthSpace.from_timm(
            config.model, input_size=config.input_size, **config.timm_kwargs
        )
        hardware = hardware_models(config, space, progress=_stderr if progress else None)
        study = open_study(config, storage, space=space, url=storage_url, hardware=hardware)
        config = _resolve(config, study)
        done = finished_count(study)
        remaining = max(0, config.trials - done)
        shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
        start = time.perf_counter()
        stop.start(timeout)
        procs = []
        for i, share in enumerate(shares[1:], 1):
            if share and not stop():
                seed = None if config.seed is None or config.sampler == "qmc" else config.seed + i
                ready = ctx.Event()
                args = (config, storage_url, share, seed, timeout, ready, event)
                p = ctx.Process(target=_worker, args=args)
                p.start()
                procs.append((p, ready))
        own = _prepare(config, storage_url, config.seed, space, hardware) if shares[0] else None
        for p, ready in procs:  # wait for their start-up (imports, width space): shares overlap
            while not ready.wait(0.2) and p.is_alive() and not stop():
                pass
        procs = [p for p, _ in procs]
        bar = _ProgressBar(config.trials, done, own) if progress and own else None
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


__all__ = [
    "DEFAULT_ROWS",
    "DEFAULT_STORAGE",
    "EPS_STEPS",
    "DIRECTIONS",
    "HardwareModels",
    "OBJECTIVES",
    "Objective",
    "SearchInterrupted",
    "SearchResult",
    "SobolMixes",
    "StorageError",
    "check_settings",
    "choose_eps",
    "front",
    "load_front",
    "load_search_study",
    "make_sampler",
    "mix_distributions",
    "open_storage",
    "open_study",
    "hardware_models",
    "stored_latency",
    "pareto_mask",
    "run_search",
    "setting_differences",
    "shown_front",
    "storage_name",
    "study_settings",
    "thin_front",
    "trial_summary",
    "widths_key",
]
