"""The main job: new widths for a model from one SynExp solve, rounded, repaired and compared.

:func:`reconfigure` is what ``widthsearch reconfig`` runs: it solves and rounds, in well under a
second, and returns a :class:`Reconfiguration` that holds everything the command prints
(``to_dict()`` is its ``--json`` output). Comparisons on the same budgets are a separate step
(:func:`compare`, or :func:`run_baseline` one at a time), so the result is complete, printed and
written before any baseline runs: SynFlow's 100 pruning rounds take 20 s to minutes on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from widthsearch.errors import WidthSearchError
from widthsearch.solve import baselines as _baselines
from widthsearch.solve.budget import (
    Budget,
    Ratio,
    parse_budget,
    parse_latency,
    parse_memory,
)
from widthsearch.solve.costs import COST_KINDS, CostModel, get_cost
from widthsearch.solve.lattice import TIME_LIMIT, LatticePick
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, get_objective, score
from widthsearch.solve.program import DEFAULT_MIN_WIDTH, Budgets, Mode, SynExpProgram
from widthsearch.solve.solver import Problem, Solution, reduce, solve, uniform_baseline
from widthsearch.solve.synexp import log_synexp
from widthsearch.space.choices import GridSpec

if TYPE_CHECKING:
    from widthsearch.hardware.latency_model import LatencyModel
    from widthsearch.hardware.memory import ActivationMemory
    from widthsearch.space.cost import Cost
    from widthsearch.space.width_space import WidthSpace

BASELINES = ("uniform", "synflow")
"""Every baseline :func:`run_baseline` knows."""
DEFAULT_BASELINES = ("uniform",)
"""What ``reconfig`` compares with unless asked: the uniform multiplier takes milliseconds;
SynFlow's iterative pruning takes 20 s to minutes on a CPU, so it is opt-in."""
GROWTH_NOTE = 1.2
"""An unbudgeted cost that grows past this multiple of the base's is said out loud
(:meth:`Reconfiguration.unbudgeted_growth`): a params budget alone can multiply MACs."""


@dataclass(frozen=True)
class Reconfiguration:
    """New widths for one model and budget, with their exact costs and SynExp."""

    model: str
    input_size: tuple[int, ...]
    mode: Mode
    budgets: Budgets
    min_width: float
    max_width: float
    divisor: int
    base_widths: tuple[int, ...]
    widths: tuple[int, ...]
    multipliers: tuple[float, ...]
    """The continuous optimum before rounding, per group."""
    base_params: int
    base_macs: int
    params: int
    macs: int
    log_synexp_gain: float
    """log SynExp of the rounded widths minus that of the base model."""
    log_synexp_continuous: float
    """log SynExp gain of the continuous optimum; the difference is what rounding cost."""
    producers: tuple[str, ...]
    baselines: tuple[_baselines.Baseline, ...] = ()
    """Comparisons on the same budgets, filled in by :func:`compare` (none from
    :func:`reconfigure` unless it was asked for some)."""
    seconds: dict[str, float] = field(default_factory=dict)
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    """What the model was built with (``num_classes``, ``in_chans``): the costs are for it."""
    predicted: Mapping[str, float] = field(default_factory=dict)
    """The new widths' value of every cost kind with a model (latency in ms, activation
    memory in bytes, ...; :mod:`widthsearch.solve.costs`), by kind name."""
    base_predicted: Mapping[str, float] = field(default_factory=dict)
    """The base widths' values of the same kinds."""
    batch_size: int = 1
    """Batch of the latency and memory figures."""
    latency_note: str = ""
    """Where the latency model came from."""
    costs: Mapping[str, Cost] = field(default_factory=dict, repr=False, compare=False)
    """The cost posynomials beyond params and MACs the budgets were held on (baselines hold
    them too)."""
    grid: GridSpec = GridSpec()
    """The width grid and ties (``--choices``, ``--tie``); empty: the divisor grid."""
    lattice: LatticePick | None = None
    """How the lattice search found the widths (grids and ties only)."""
    objective: str = DEFAULT_OBJECTIVE
    """What the widths maximize (:data:`widthsearch.solve.objectives.OBJECTIVES`)."""
    objective_value: float | None = None
    """The objective at the widths relative to the base (None: SynExp, reported above)."""
    held: tuple[str, ...] = ()
    """Costs the objective held at the uniform multiplier's (``synexp-held``): their budgets
    in ``budgets`` were set by it, not by the user."""
    decisions: tuple[str, ...] = ()
    """What the solve decided that the user should know (a PreCrop grid cut at the base, ...)."""
    problem: Problem | None = field(default=None, repr=False, compare=False)
    """The request as solved (bounds resolved): baselines re-solve it with other strategies."""
    solution: Solution | None = field(default=None, repr=False, compare=False)
    """The one solve's whole answer (with ``top=K``: the best K lattice points, ``ranked``)."""
    chosen_by: Mapping[str, Any] | None = None
    """How training chose these widths among the best K (``--train-top``,
    :class:`widthsearch.verify.choose.Choice`); None: the objective chose them."""

    def with_baselines(
        self, found: Sequence[_baselines.Baseline], seconds: float
    ) -> Reconfiguration:
        """This result with ``found`` added to its baselines and ``seconds`` to their time."""
        times = dict(self.seconds)
        times["baselines"] = times.get("baselines", 0.0) + seconds
        return replace(self, baselines=(*self.baselines, *found), seconds=times)

    @property
    def latency_ms(self) -> float | None:
        """Predicted latency of the new widths (None without a latency model)."""
        return self.value("latency")

    @property
    def base_latency_ms(self) -> float | None:
        return self.base_value("latency")

    @property
    def memory_bytes(self) -> int | None:
        """Activation bytes a training step saves (None without a memory model)."""
        value = self.value("memory")
        return None if value is None else int(value)

    @property
    def base_memory_bytes(self) -> int | None:
        value = self.base_value("memory")
        return None if value is None else int(value)

    def value(self, name: str) -> float | None:
        """The new widths' value of cost kind ``name`` (None where nothing predicts it)."""
        own = {"params": self.params, "macs": self.macs}
        return own[name] if name in own else self.predicted.get(name)

    def base_value(self, name: str) -> float | None:
        """The base widths' value of cost kind ``name``."""
        own = {"params": self.base_params, "macs": self.base_macs}
        return own[name] if name in own else self.base_predicted.get(name)

    def unbudgeted_growth(self, threshold: float = GROWTH_NOTE) -> dict[str, float]:
        """Costs without a budget that grew past ``threshold`` times the base's, as ratios:
        ``{"macs": 1.73}`` for a params-only budget on resnet50. Latency and memory count
        where the result predicts them."""
        out = {}
        for name, budget in self.budgets.limits().items():
            new, base = self.value(name), self.base_value(name)
            if budget is None and new is not None and base and new / base > threshold:
                out[name] = new / base
        return out

    @property
    def rounding_loss(self) -> float:
        return self.log_synexp_continuous - self.log_synexp_gain

    @property
    def solve_seconds(self) -> float:
        """Solve plus rounding: the time from budgets to integer widths."""
        return self.seconds.get("solve", 0.0) + self.seconds.get("round", 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "timm_kwargs": dict(self.timm_kwargs),
            "mode": self.mode,
            "budgets": self.budgets_dict(),
            "min_width": self.min_width,
            "max_width": self.max_width,
            "divisor": self.divisor,
            "base_params": self.base_params,
            "base_macs": self.base_macs,
            "params": self.params,
            "macs": self.macs,
            "flops": 2 * self.macs,
            "params_ratio": self.params / self.base_params,
            "macs_ratio": self.macs / self.base_macs,
            "log_synexp_gain": self.log_synexp_gain,
            "log_synexp_continuous": self.log_synexp_continuous,
            "rounding_loss": self.rounding_loss,
            "widths": {str(i): w for i, w in enumerate(self.widths)},
            "base_widths": {str(i): w for i, w in enumerate(self.base_widths)},
            "multipliers": {str(i): x for i, x in enumerate(self.multipliers)},
            "groups": [
                {"id": i, "producer": p, "base": b, "width": w}
                for i, (p, b, w) in enumerate(
                    zip(self.producers, self.base_widths, self.widths, strict=True)
                )
            ],
            "baselines": [b.to_dict() for b in self.baselines],
            **self.predicted_dict(),
            "batch_size": self.batch_size,
            "latency_model": self.latency_note or None,
            "unbudgeted_growth": self.unbudgeted_growth(),
            "solve_seconds": self.solve_seconds,
            "seconds": dict(self.seconds),
            "grid": None if self.grid.empty else self.grid.to_dict(),
            "lattice": None if self.lattice is None else self.lattice.to_dict(),
            "objective": self.objective,
            "objective_value": self.objective_value,
            "held": list(self.held),
            "decisions": list(self.decisions),
            "ranked": None
            if self.solution is None or len(self.solution.ranked) < 2
            else [list(w) for w in self.solution.ranked],
            "chosen_by": None if self.chosen_by is None else dict(self.chosen_by),
            "time_limit": None if self.problem is None else self.problem.time_limit,
        }

    def budgets_dict(self) -> dict[str, float | None]:
        """Every cost kind's budget (``key``: absolute, ``{name}_ratio``: of the base's)."""
        out: dict[str, float | None] = {}
        for kind in COST_KINDS.values():
            limit = getattr(self.budgets, kind.name)
            out[kind.key] = limit
            out[kind.ratio_key] = _ratio(limit, self.base_value(kind.name))
        return out

    def predicted_dict(self) -> dict[str, float | None]:
        """Every modelled cost kind's value, base value and ratio (None without its model)."""
        out: dict[str, float | None] = {}
        for kind in COST_KINDS.values():
            if kind.build is None:
                continue
            new, base = self.value(kind.name), self.base_value(kind.name)
            out[kind.key] = new
            out[kind.base_key] = base
            out[kind.ratio_key] = _ratio(new, base)
        return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def reconfigure(
    space: WidthSpace,
    *,
    params: Budget = None,
    macs: Budget = None,
    latency: Budget = None,
    memory: Budget = None,
    latency_model: LatencyModel | None = None,
    memory_model: ActivationMemory | None = None,
    latency_note: str = "",
    mode: Mode = "preconfig",
    min_width: float = DEFAULT_MIN_WIDTH,
    max_width: float | None = None,
    divisor: int = 8,
    baselines: Sequence[str] = (),
    program: SynExpProgram | None = None,
    synflow_progress: Callable[[int, int], None] | None = None,
    choices: str | GridSpec | None = None,
    tie: str | Sequence[str] = (),
    time_limit: float = TIME_LIMIT,
    objective: str = DEFAULT_OBJECTIVE,
    budgets: Mapping[str, Budget] | None = None,
    models: Mapping[str, CostModel] | None = None,
    top: int = 1,
) -> Reconfiguration:
    """Widths that maximize the objective (SynExp by default) under every budget given: params,
    MACs, predicted latency on ``latency_model``'s device, training activation memory, and any
    registered cost kind through ``budgets`` and ``models``. A model given without its budget
    still reports its figures.

    Budgets read as the CLI's do (:meth:`widthsearch.solve.costs.CostKind.resolve`): an int is
    a count (``params=4_200_000``), a float a ratio of the base's (``params=0.5``),
    ``Ratio(0.5)`` a ratio said explicitly, text the CLI's syntax (``"4.2M"``, ``"12ms"``,
    ``"300MB"``); a latency number is milliseconds.

    ``mode="precrop"`` only removes channels (``max_width`` at most 1); ``"preconfig"`` lets
    groups grow up to ``max_width`` (default :data:`DEFAULT_MAX_WIDTH`). Widths are multiples of
    ``divisor`` within the bounds, or, with ``choices`` and ``tie``, the best point of that
    width lattice, exact unless the search takes longer than ``time_limit`` (then the best found
    and its certified gap, in ``result.lattice``). The realized model holds every budget
    exactly. ``baselines`` runs :func:`compare` before returning (call it yourself to have the
    result first).

    The solve is :func:`widthsearch.solve.solver.solve`, the one every command calls; this reads
    the arguments into its :class:`~widthsearch.solve.problem.Problem`, and what it decided
    (PreCrop cutting a grid at the base, say) is in ``result.decisions``.

    Args:
        space: the model's width space (:meth:`WidthSpace.from_timm`, ``from_module``).
        params: largest parameter count, or None for free.
        macs: largest MACs per image, or None for free.
        latency: largest predicted milliseconds on ``latency_model``'s device.
        memory: largest training activation memory in bytes on ``memory_model``.
        latency_model: fitted latency of the device (:mod:`widthsearch.hardware`).
        memory_model: exact activation memory of the model.
        latency_note: what the latency model is, said in the output.
        mode: ``"precrop"`` or ``"preconfig"``.
        min_width: smallest multiplier of a group's base width.
        max_width: largest multiplier (default by mode).
        divisor: widths are multiples of it.
        baselines: names of baselines to add (``"uniform"``, ``"synflow"``).
        choices: a width grid (``"0.25x,..."``, ``"8,16,..."`` or a :class:`GridSpec`).
        tie: ``"GLOB[,GLOB...]"`` sets of groups that share one width.
        time_limit: seconds for the exact lattice search before it falls back.
        program: a prebuilt :class:`SynExpProgram` of ``space`` to reuse.
        budgets: budgets of any registered cost kind by name (``{"peak_memory": "256KB"}``,
            :data:`widthsearch.solve.costs.COST_KINDS`), as the keywords above read them.
        models: the cost models of those kinds by name (:func:`widthsearch.solve.costs.
            cost_models`); ``latency_model`` and ``memory_model`` are two of them.
        top: also find the best ``top`` lattice points, in order (``result.solution.ranked``;
            a width grid only): what training in the loop chooses among.
        synflow_progress: called with (round, rounds) during the SynFlow baseline.

    Returns:
        The rounded widths, their exact costs against the base and every budget, the log
        SynExp gain (and the continuous optimum's) and the solve's timings.

    Raises:
        BoundsError: bounds no width vector meets: ``min_width > max_width``, a group with no
            width on the grid, or budgets the widest widths already hold (nothing to solve).
        GridError: unreadable choices or ties, or ones the model cannot take.
        InfeasibleBudgetError: a budget is below what ``min_width`` (or the grid) allows.
        WidthSearchError: bad mode, objective or baseline names, no budget at all, or a budget
            that is not one (see :mod:`widthsearch.solve.budget`).
    """
    given = {"params": params, "macs": macs, "latency": latency, "memory": memory}
    given.update(budgets or {})
    built: dict[str, CostModel] = dict(models or {})
    if latency_model is not None:
        built["latency"] = latency_model
    if memory_model is not None:
        built["memory"] = memory_model
    limits = _absolute(space, given, built)
    check_baselines(baselines)
    spec = choices if isinstance(choices, GridSpec) else GridSpec.parse(choices, tie)
    if isinstance(choices, GridSpec) and tie:
        spec = GridSpec(spec.choices, spec.groups, spec.ties + GridSpec.parse(None, tie).ties)
    problem = Problem(
        limits,
        objective=get_objective(objective).name,
        mode=mode,
        min_width=min_width,
        max_width=max_width,
        divisor=divisor,
        grid=spec,
        time_limit=time_limit,
        top=top,
    )
    solution = solve(space, problem, {n: m.cost for n, m in built.items()}, program=program)
    result = result_of(space, solution, built, latency_note=latency_note)
    if baselines:
        result = compare(result, space, baselines, synflow_progress=synflow_progress)
    return result


def chosen_result(
    result: Reconfiguration,
    space: WidthSpace,
    widths: Sequence[int],
    chosen_by: Mapping[str, Any],
) -> Reconfiguration:
    """``result`` moved to ``widths``, one of its best lattice points that training chose
    (``chosen_by`` says how: :meth:`widthsearch.verify.choose.Choice.to_dict`), with the costs,
    predictions and log SynExp of those widths.

    Raises:
        WidthSearchError: ``widths`` are not among the result's best points.
    """
    widths = tuple(int(w) for w in widths)
    solution = result.solution
    if solution is None or widths not in solution.ranked:
        raise WidthSearchError("the chosen widths are not among the result's best lattice points")
    rank = solution.ranked.index(widths)
    pick = solution.ranked_picks[rank] if solution.ranked_picks else result.lattice
    value = None
    if result.objective_value is not None:
        value = score(space, result.objective, widths)
    return replace(
        result,
        widths=widths,
        params=space.params(widths),
        macs=space.macs(widths),
        log_synexp_gain=log_synexp(space, widths),
        predicted={n: c(widths) for n, c in result.costs.items()},
        objective_value=value,
        lattice=pick,
        chosen_by=dict(chosen_by),
    )


def _absolute(
    space: WidthSpace, given: Mapping[str, Budget], models: Mapping[str, CostModel]
) -> Budgets:
    """The budgets of ``given`` (cost name -> a budget as :meth:`CostKind.resolve` reads it)
    as absolute figures, each kind's ratios of the base's value on its model.

    Raises:
        WidthSearchError: an unknown cost, a budget without its model, or one that is not a
            budget.
    """
    out: dict[str, float | None] = {}
    for name, spec in given.items():
        kind = get_cost(name)
        if spec is None:
            continue
        if kind.build is not None and name not in models:
            what = {
                "latency": "a latency model (latency_model=)",
                "memory": "the activation memory model (memory_model=)",
            }.get(name, f"its model (models={{'{name}': ...}})")
            raise WidthSearchError(f"a {kind.label} budget needs {what}")
        own = {"params": space.params(), "macs": space.macs()}
        base: float | None = own.get(name)
        if name in models:
            base = models[name](space.base_widths)
        out[name] = kind.resolve(spec, base)
    return Budgets(**out)


def result_of(
    space: WidthSpace,
    solution: Solution,
    models: Mapping[str, CostModel] | None = None,
    *,
    latency_note: str = "",
) -> Reconfiguration:
    """The :class:`Reconfiguration` of a :class:`~widthsearch.solve.solver.Solution`: its
    widths with their exact costs, every cost model's prediction, and log SynExp."""
    models = dict(models or {})
    latency_model = cast("LatencyModel | None", models.get("latency"))
    memory_model = cast("ActivationMemory | None", models.get("memory"))
    widths = solution.widths
    problem = solution.problem
    continuous = solution.continuous or tuple(float(w) for w in widths)
    gain = log_synexp(space, widths)
    continuous_gain = log_synexp(space, continuous)
    pick = solution.lattice
    if pick is not None and pick.relaxed_objective is not None:
        # on a lattice the continuous optimum is the relaxation of the objective the search
        # maximized (DenseNet's concatenations: SynExp's AM-GM form): what the grid cost is
        # its difference from the pick under that same objective
        continuous_gain = gain + max(pick.relaxed_objective - pick.objective, 0.0)
    lo, hi = solution.bounds
    return Reconfiguration(
        model=space.model,
        input_size=space.input_size,
        mode=problem.mode,
        budgets=problem.budgets,
        min_width=lo,
        max_width=hi,
        divisor=problem.divisor,
        base_widths=space.base_widths,
        widths=widths,
        multipliers=tuple(c / b for c, b in zip(continuous, space.base_widths, strict=True)),
        base_params=space.params(),
        base_macs=space.macs(),
        params=space.params(widths),
        macs=space.macs(widths),
        log_synexp_gain=gain,
        log_synexp_continuous=continuous_gain,
        producers=tuple(g.producer for g in space.groups),
        seconds=dict(solution.seconds),
        timm_kwargs=dict(space.timm_kwargs),
        predicted={n: m(widths) for n, m in models.items()},
        base_predicted={n: m(space.base_widths) for n, m in models.items()},
        batch_size=_batch_size(latency_model, memory_model),
        latency_note=latency_note or ("" if latency_model is None else latency_model.source),
        costs={n: m.cost for n, m in models.items()},
        grid=problem.grid,
        lattice=solution.lattice,
        objective=problem.objective,
        objective_value=solution.value,
        held=solution.held,
        decisions=solution.decisions,
        problem=problem,
        solution=solution,
    )


def _batch_size(latency_model: LatencyModel | None, memory_model: ActivationMemory | None) -> int:
    if latency_model is not None:
        return latency_model.device.batch_size
    return memory_model.batch_size if memory_model is not None else 1


def check_baselines(names: Sequence[str]) -> None:
    """Fail on a baseline name :func:`run_baseline` does not know.

    Raises:
        WidthSearchError: an unknown name.
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise WidthSearchError(
            f"unknown baseline {', '.join(unknown)}; choose from {', '.join(BASELINES)} or none"
        )


def run_baseline(
    result: Reconfiguration,
    space: WidthSpace,
    name: str,
    *,
    synflow_progress: Callable[[int, int], None] | None = None,
) -> _baselines.Baseline:
    """The baseline ``name`` on ``result``'s budgets, bounds and grid: ``uniform`` is the one
    solve's uniform strategy on ``result``'s problem (:func:`widthsearch.solve.solver.solve`).

    Raises:
        WidthSearchError: an unknown name.
    """
    check_baselines([name])
    if name == "uniform":
        problem = result.problem or _problem_of(result)
        resolved, _ = reduce(space, problem, result.costs, strategy="uniform")
        return uniform_baseline(resolved)
    return _baselines.synflow(space, result.budgets, progress=synflow_progress)


def _problem_of(result: Reconfiguration) -> Problem:
    """The problem of a result built without one (a width file's, say): its budgets, mode,
    bounds, divisor and grid as recorded."""
    return Problem(
        result.budgets,
        objective=result.objective,
        mode=result.mode,
        min_width=result.min_width,
        max_width=result.max_width,
        divisor=result.divisor,
        grid=result.grid,
    )


def compare(
    result: Reconfiguration,
    space: WidthSpace,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    *,
    synflow_progress: Callable[[int, int], None] | None = None,
) -> Reconfiguration:
    """``result`` with the named baselines on its budgets added (after any it has)."""
    check_baselines(baselines)
    start = time.perf_counter()
    found = [run_baseline(result, space, n, synflow_progress=synflow_progress) for n in baselines]
    return result.with_baselines(found, time.perf_counter() - start)


__all__ = [
    "BASELINES",
    "DEFAULT_BASELINES",
    "GROWTH_NOTE",
    "Ratio",
    "Reconfiguration",
    "check_baselines",
    "chosen_result",
    "compare",
    "parse_budget",
    "parse_latency",
    "parse_memory",
    "reconfigure",
    "run_baseline",
]
