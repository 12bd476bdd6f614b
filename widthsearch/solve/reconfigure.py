"""The main job: new widths for a model from one SynExp solve, rounded, repaired and compared.

:func:`reconfigure` is what ``widthsearch reconfig`` runs: it solves and rounds, in well under a
second, and returns a :class:`Reconfiguration` that holds everything the command prints
(``to_dict()`` is its ``--json`` output). Comparisons on the same budgets are a separate step
(:func:`compare`, or :func:`run_baseline` one at a time), so the result is complete, printed and
written before any baseline runs: SynFlow's 100 pruning rounds take 20 s to minutes on a CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from widthsearch.errors import GridError, WidthSearchError
from widthsearch.solve import baselines as _baselines
from widthsearch.solve._lattice_model import Score
from widthsearch.solve.budget import (
    Budget,
    Ratio,
    parse_budget,
    parse_latency,
    parse_memory,
    resolve_count,
    resolve_latency,
)
from widthsearch.solve.lattice import TIME_LIMIT, LatticePick, best_point
from widthsearch.solve.objectives import (
    DEFAULT_OBJECTIVE,
    Objective,
    get_objective,
    score,
    weights,
)
from widthsearch.solve.program import (
    DEFAULT_MAX_WIDTH,
    DEFAULT_MIN_WIDTH,
    MODES,
    Budgets,
    Mode,
    SynExpProgram,
    objective_exponents,
)
from widthsearch.solve.rounding import checked_grid, round_widths, width_grid
from widthsearch.solve.synexp import log_synexp
from widthsearch.space.choices import GridSpec, WidthLattice

if TYPE_CHECKING:
    from widthsearch.hardware.latency_model import LatencyModel
    from widthsearch.hardware.memory import ActivationMemory
    from widthsearch.space.cost import Posynomial
    from widthsearch.space.groups import Group
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
    latency_ms: float | None = None
    """Predicted latency of the new widths (None without a latency model)."""
    base_latency_ms: float | None = None
    memory_bytes: int | None = None
    """Activation bytes a training step saves (None without a memory model)."""
    base_memory_bytes: int | None = None
    batch_size: int = 1
    """Batch of the latency and memory figures."""
    latency_note: str = ""
    """Where the latency model came from."""
    costs: Mapping[str, Posynomial] = field(default_factory=dict, repr=False, compare=False)
    """The latency and memory posynomials the budgets were held on (baselines hold them too)."""
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

    def with_baselines(
        self, found: Sequence[_baselines.Baseline], seconds: float
    ) -> Reconfiguration:
        """This result with ``found`` added to its baselines and ``seconds`` to their time."""
        times = dict(self.seconds)
        times["baselines"] = times.get("baselines", 0.0) + seconds
        return replace(self, baselines=(*self.baselines, *found), seconds=times)

    def unbudgeted_growth(self, threshold: float = GROWTH_NOTE) -> dict[str, float]:
        """Costs without a budget that grew past ``threshold`` times the base's, as ratios:
        ``{"macs": 1.73}`` for a params-only budget on resnet50. Latency and memory count
        where the result predicts them."""
        b = self.budgets
        costs = (
            ("params", b.params, self.params, self.base_params),
            ("macs", b.macs, self.macs, self.base_macs),
            ("latency", b.latency, self.latency_ms, self.base_latency_ms),
            ("memory", b.memory, self.memory_bytes, self.base_memory_bytes),
        )
        return {
            name: new / base
            for name, budget, new, base in costs
            if budget is None and new is not None and base and new / base > threshold
        }

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
            "budgets": {
                "params": self.budgets.params,
                "macs": self.budgets.macs,
                "params_ratio": None
                if self.budgets.params is None
                else self.budgets.params / self.base_params,
                "macs_ratio": None
                if self.budgets.macs is None
                else self.budgets.macs / self.base_macs,
                "latency_ms": self.budgets.latency,
                "latency_ratio": _ratio(self.budgets.latency, self.base_latency_ms),
                "memory_bytes": self.budgets.memory,
                "memory_ratio": _ratio(self.budgets.memory, self.base_memory_bytes),
            },
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
            "latency_ms": self.latency_ms,
            "base_latency_ms": self.base_latency_ms,
            "latency_ratio": _ratio(self.latency_ms, self.base_latency_ms),
            "memory_bytes": self.memory_bytes,
            "base_memory_bytes": self.base_memory_bytes,
            "memory_ratio": _ratio(self.memory_bytes, self.base_memory_bytes),
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
        }


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
) -> Reconfiguration:
    """Widths that maximize SynExp with params <= ``params`` and MACs <= ``macs``, predicted
    latency <= ``latency`` on ``latency_model``'s device and training activation memory <=
    ``memory`` (``memory_model``'s batch). A model given without its budget still reports its
    figures.

    Budgets read as the CLI's do (:mod:`widthsearch.solve.budget`): an int is a count
    (``params=4_200_000``), a float a ratio of the base's cost (``params=0.5``, as
    ``--params 0.5``), ``Ratio(0.5)`` a ratio said explicitly, and text the CLI's syntax
    (``"0.5"``, ``"4.2M"``, ``"12ms"``, ``"300MB"``). A latency number is milliseconds. A
    float of 1000 or more is refused (write a count as an int or text).

    ``mode="precrop"`` only removes channels (``max_width`` at most 1, default 1); ``"preconfig"``
    lets groups grow up to ``max_width`` times their base (default :data:`DEFAULT_MAX_WIDTH`).
    Widths are multiples of ``divisor`` within ``[min_width, max_width]`` times their base (see
    :func:`widthsearch.solve.rounding.width_grid`); the realized model holds every budget exactly.
    Bounds and budgets are checked before solving. Pass a prebuilt ``program`` to skip building
    the geometric program again. ``baselines`` (default none) runs :func:`compare` on the result
    before returning it; call :func:`compare` yourself to have the result first. ``objective``
    names what the widths maximize (:data:`widthsearch.solve.objectives.OBJECTIVES`; default
    the paper's SynExp); ``synexp-held`` adds a budget for params or MACs, whichever has none,
    at the uniform multiplier's within the given budgets.

    ``choices`` (``"0.25x,0.5x,0.75x,1x"``: multipliers of each group's base width, each
    ``round(m * base)``; ``"8,16,24,32"``: widths; or a :class:`GridSpec` with per-glob lists)
    puts every free group on that grid instead, and each ``tie`` (``"GLOB[,GLOB...]"`` over
    producer names) makes the matching groups share one width. Then the widths are the lattice
    point that maximizes SynExp under every budget, found exactly (enumeration or branch and
    bound, :func:`widthsearch.solve.lattice.best_point`) unless that takes longer than
    ``time_limit`` seconds, when it is the best point found (never worse than rounding and
    repair) with the gap to the relaxation's bound in ``result.lattice``. A grid whose widest
    point fits every budget returns that point.

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
    if latency is not None and latency_model is None:
        raise WidthSearchError("a latency budget needs a latency model (latency_model=)")
    if memory is not None and memory_model is None:
        raise WidthSearchError("a memory budget needs the activation memory model (memory_model=)")
    budgets = Budgets(
        params=resolve_count(params, space.params(), "params"),
        macs=resolve_count(macs, space.macs(), "macs"),
        latency=resolve_latency(
            latency, None if latency_model is None else latency_model(space.base_widths)
        ),
        memory=resolve_count(
            memory, 0 if memory_model is None else memory_model(space.base_widths), "memory"
        ),
    )
    _check_request(mode, budgets, latency_model, memory_model, baselines)
    obj = get_objective(objective)
    max_width = _max_width(mode, max_width)
    spec = choices if isinstance(choices, GridSpec) else GridSpec.parse(choices, tie)
    if isinstance(choices, GridSpec) and tie:
        spec = GridSpec(spec.choices, spec.groups, spec.ties + GridSpec.parse(None, tie).ties)
    if not spec.empty:
        result = _on_lattice(
            space,
            budgets,
            spec,
            latency_model=latency_model,
            memory_model=memory_model,
            latency_note=latency_note,
            mode=mode,
            min_width=min_width,
            max_width=max_width,
            divisor=divisor,
            time_limit=time_limit,
            objective=obj,
        )
        if baselines:
            result = compare(result, space, baselines, synflow_progress=synflow_progress)
        return result
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    hardware = _hardware_costs(latency_model, memory_model)
    grid = checked_grid(
        space,
        budgets,
        divisor=divisor,
        min_width=min_width,
        max_width=max_width,
        costs=hardware,
    )
    held: tuple[str, ...] = ()
    if obj.hold:
        budgets, held = _hold(space, budgets, min_width, max_width, hardware)
    log_w, inv_w = weights(space, obj)
    # SynExp and its held variant round on the exact SynExp (concatenations included)
    separable = None if obj.log_weights is objective_exponents else (log_w, inv_w)
    kw = {"inverse_weights": inv_w} if obj.inverse_weights else {"log_weights": log_w}
    wanted = inv_w if obj.inverse_weights else log_w
    if (
        program is None
        or any(program.costs.get(n) is not c for n, c in hardware.items())
        or program.minimizes != bool(obj.inverse_weights)
        or program.objective_weights != [wanted[g] for g in program.free]
    ):
        program = SynExpProgram(
            space, latency=hardware.get("latency"), memory=hardware.get("memory"), **kw
        )
    seconds["build"] = time.perf_counter() - start
    solution = program.solve(budgets, min_width=min_width, max_width=max_width)
    seconds["solve"] = solution.seconds

    start = time.perf_counter()
    widths = round_widths(space, solution.multipliers, budgets, grid, hardware, separable)
    seconds["round"] = time.perf_counter() - start

    continuous = [x * w for x, w in zip(solution.multipliers, space.base_widths, strict=True)]
    result = Reconfiguration(
        model=space.model,
        input_size=space.input_size,
        mode=mode,
        budgets=budgets,
        min_width=min_width,
        max_width=max_width,
        divisor=divisor,
        base_widths=space.base_widths,
        widths=widths,
        multipliers=solution.multipliers,
        base_params=space.params(),
        base_macs=space.macs(),
        params=space.params(widths),
        macs=space.macs(widths),
        log_synexp_gain=log_synexp(space, widths),
        log_synexp_continuous=log_synexp(space, continuous),
        producers=tuple(g.producer for g in space.groups),
        seconds=seconds,
        timm_kwargs=dict(space.timm_kwargs),
        latency_ms=None if latency_model is None else latency_model(widths),
        base_latency_ms=None if latency_model is None else latency_model(space.base_widths),
        memory_bytes=None if memory_model is None else memory_model(widths),
        base_memory_bytes=None if memory_model is None else memory_model(space.base_widths),
        batch_size=_batch_size(latency_model, memory_model),
        latency_note=latency_note or ("" if latency_model is None else latency_model.source),
        costs=hardware,
        objective=obj.name,
        objective_value=None if separable is None else score(space, obj, widths),
        held=held,
    )
    if baselines:
        result = compare(result, space, baselines, synflow_progress=synflow_progress)
    return result


def _on_lattice(
    space: WidthSpace,
    budgets: Budgets,
    spec: GridSpec,
    *,
    latency_model: LatencyModel | None,
    memory_model: ActivationMemory | None,
    latency_note: str,
    mode: Mode,
    min_width: float,
    max_width: float,
    divisor: int,
    time_limit: float,
    objective: Objective,
) -> Reconfiguration:
    """:func:`reconfigure` on a width grid with ties: the best lattice point of ``objective``."""
    start = time.perf_counter()
    lattice = spec.resolve(space, divisor=divisor, min_width=min_width, max_width=max_width)
    if mode == "precrop":
        wide = [g for g in space.free_groups if lattice.grid[g.id][-1] > g.width]
        if wide:
            g = wide[0]
            raise GridError(
                f"precrop only removes channels, but the grid gives group {g.id} ({g.producer}, "
                f"base {g.width}) width {lattice.grid[g.id][-1]}; use --mode preconfig or "
                "choices at most 1x"
            )
    hardware = _hardware_costs(latency_model, memory_model)
    held: tuple[str, ...] = ()
    if objective.hold:
        budgets, held = _hold(space, budgets, min_width, max_width, hardware)
    separable = None
    if objective.log_weights is not objective_exponents:  # another objective than SynExp's
        log_w, inv_w = weights(space, objective)
        separable = _group_score(space, log_w, inv_w)
    seconds = {"build": time.perf_counter() - start}
    pick = best_point(
        space, budgets, lattice, costs=hardware, time_limit=time_limit, score=separable
    )
    seconds["solve"], seconds["round"] = pick.seconds, 0.0  # the search is the rounding
    widths = pick.widths
    relaxed = pick.relaxed or tuple(float(w) for w in widths)
    ratios = [w / g.width for g in space.free_groups for w in lattice.grid[g.id]]
    if spec.choices is None and not spec.groups:  # ties on the divisor grid: its bounds
        ratios = [min_width, max_width]
    return Reconfiguration(
        model=space.model,
        input_size=space.input_size,
        mode=mode,
        budgets=budgets,
        min_width=min(ratios),
        max_width=max(ratios),
        divisor=divisor,
        base_widths=space.base_widths,
        widths=widths,
        multipliers=tuple(r / b for r, b in zip(relaxed, space.base_widths, strict=True)),
        base_params=space.params(),
        base_macs=space.macs(),
        params=space.params(widths),
        macs=space.macs(widths),
        log_synexp_gain=log_synexp(space, widths),
        log_synexp_continuous=log_synexp(space, relaxed),
        producers=tuple(g.producer for g in space.groups),
        seconds=seconds,
        timm_kwargs=dict(space.timm_kwargs),
        latency_ms=None if latency_model is None else latency_model(widths),
        base_latency_ms=None if latency_model is None else latency_model(space.base_widths),
        memory_bytes=None if memory_model is None else memory_model(widths),
        base_memory_bytes=None if memory_model is None else memory_model(space.base_widths),
        batch_size=_batch_size(latency_model, memory_model),
        latency_note=latency_note or ("" if latency_model is None else latency_model.source),
        costs=hardware,
        grid=spec,
        lattice=pick,
        objective=objective.name,
        objective_value=None if separable is None else score(space, objective, widths),
        held=held,
    )


def _group_score(space: WidthSpace, log_w: Sequence[float], inv_w: Sequence[float]) -> Score:
    """A separable objective's term of one group at an array of its widths, for the lattice
    search: ``a_g log(w / base_g) - b_g / w``."""
    import numpy as np

    def group_score(group: Group, widths: np.ndarray) -> np.ndarray:
        g = group.id
        return log_w[g] * np.log(widths / group.width) - inv_w[g] / widths

    return group_score


def _hardware_costs(
    latency_model: LatencyModel | None, memory_model: ActivationMemory | None
) -> dict[str, Posynomial]:
    """The latency and memory posynomials of the models given."""
    out: dict[str, Posynomial] = {}
    if latency_model is not None:
        out["latency"] = latency_model.cost
    if memory_model is not None:
        out["memory"] = memory_model.cost
    return out


def _batch_size(latency_model: LatencyModel | None, memory_model: ActivationMemory | None) -> int:
    if latency_model is not None:
        return latency_model.device.batch_size
    return memory_model.batch_size if memory_model is not None else 1


def result_lattice(result: Reconfiguration, space: WidthSpace) -> WidthLattice:
    """The lattice a grid result was picked on (for its baselines)."""
    return result.grid.resolve(
        space, divisor=result.divisor, min_width=result.min_width, max_width=result.max_width
    )


def _hold(
    space: WidthSpace,
    budgets: Budgets,
    min_width: float,
    max_width: float,
    hardware: Mapping[str, Posynomial],
) -> tuple[Budgets, tuple[str, ...]]:
    """``budgets`` with params or MACs, whichever has no budget, held at its cost under the
    largest continuous uniform multiplier within ``[min_width, max_width]`` that holds the
    given budgets (unchanged when both or neither have one), and the names of the costs held.

    The multiplier is continuous, not the largest uniform point of a coarse grid, which can lie
    far below the budget (0.25x, 0.5x, ...) and would hold the other cost far too tight.
    """
    missing = [n for n in ("params", "macs") if getattr(budgets, n) is None]
    if len(missing) != 1:
        return budgets, ()
    polys = {"params": space.param_cost, "macs": space.mac_cost, **hardware}
    limits = {n: b for n, b in budgets.limits().items() if b is not None and n in polys}
    base = space.base_widths

    def cost(name: str, alpha: float) -> float:
        x = [1.0 if g.fixed else alpha for g in space.groups]
        return sum(
            c * math.prod(x[g] ** e for g, e in mono.items())
            for c, mono in polys[name].in_multipliers(base)
        )

    lo, hi = min_width, max_width
    if not all(cost(n, lo) <= b for n, b in limits.items()):
        return budgets, ()  # infeasible: the solve's own check says so
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if all(cost(n, mid) <= b for n, b in limits.items()) else (lo, mid)
    name = missing[0]
    return replace(budgets, **{name: math.floor(cost(name, lo))}), (name,)


def _check_request(
    mode: str,
    budgets: Budgets,
    latency_model: LatencyModel | None,
    memory_model: ActivationMemory | None,
    baselines: Sequence[str],
) -> None:
    """Fail on a request no solve can answer: an unknown mode or baseline, no budget at all, a
    latency or memory budget without its model.

    Raises:
        WidthSearchError: says which, and what to give.
    """
    if mode not in MODES:
        raise WidthSearchError(options=f"{{mode}} must be one of {', '.join(MODES)}, not '{mode}'")
    if all(b is None for b in budgets.limits().values()):
        raise WidthSearchError(options="give {budget}")
    if budgets.latency is not None and latency_model is None:
        raise WidthSearchError("a latency budget needs a latency model (a device profile)")
    if budgets.memory is not None and memory_model is None:
        raise WidthSearchError("a memory budget needs the activation memory model")
    check_baselines(baselines)


def _max_width(mode: str, max_width: float | None) -> float:
    """The cap on any group's multiplier: at most 1 for PreCrop (default 1), else
    :data:`DEFAULT_MAX_WIDTH` unless given.

    Raises:
        WidthSearchError: a PreCrop cap above 1.
    """
    if mode == "precrop":
        if max_width is not None and max_width > 1:
            raise WidthSearchError(
                options=f"precrop only removes channels: {{max_width}} must be at most 1, not "
                f"{max_width:g} ({{mode}}='preconfig' grows groups)"
            )
        return 1.0 if max_width is None else max_width
    return DEFAULT_MAX_WIDTH if max_width is None else max_width


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
    """The baseline ``name`` on ``result``'s budgets, bounds and grid.

    Raises:
        WidthSearchError: an unknown name.
    """
    check_baselines([name])
    if name == "uniform" and not result.grid.empty:
        return _baselines.uniform_lattice(
            space, result.budgets, result_lattice(result, space), costs=result.costs
        )
    if name == "uniform":
        grid = width_grid(
            space, divisor=result.divisor, min_width=result.min_width, max_width=result.max_width
        )
        return _baselines.uniform(
            space,
            result.budgets,
            grid,
            min_width=result.min_width,
            max_width=result.max_width,
            costs=result.costs,
        )
    return _baselines.synflow(space, result.budgets, progress=synflow_progress)


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
    "compare",
    "parse_budget",
    "parse_latency",
    "parse_memory",
    "reconfigure",
    "run_baseline",
]
