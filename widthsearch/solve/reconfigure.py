"""The main job: new widths for a model from one SynExp solve, rounded, repaired and compared.

:func:`reconfigure` is what ``widthsearch reconfig`` runs: it solves and rounds, in well under a
second, and returns a :class:`Reconfiguration` that holds everything the command prints
(``to_dict()`` is its ``--json`` output). Comparisons on the same budgets are a separate step
(:func:`compare`, or :func:`run_baseline` one at a time), so the result is complete, printed and
written before any baseline runs: SynFlow's 100 pruning rounds take 20 s to minutes on a CPU.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from widthsearch.errors import WidthSearchError
from widthsearch.solve import baselines as _baselines
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, get_objective, score, weights
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

if TYPE_CHECKING:
    from widthsearch.hardware.latency_model import LatencyModel
    from widthsearch.hardware.memory import ActivationMemory
    from widthsearch.space.cost import Posynomial
    from widthsearch.space.width_space import WidthSpace

BASELINES = ("uniform", "synflow")
"""Every baseline :func:`run_baseline` knows."""
DEFAULT_BASELINES = ("uniform",)
"""What ``reconfig`` compares with unless asked: the uniform multiplier takes milliseconds;
SynFlow's iterative pruning takes 20 s to minutes on a CPU, so it is opt-in."""
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*$", re.IGNORECASE)
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_NUMBER = r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*"
_TIME = re.compile(_NUMBER + r"(ms|s|us)?\s*$", re.IGNORECASE)
_BYTES = re.compile(_NUMBER + r"([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_BYTE_UNITS = {
    "b": 1,
    **{f"{p}b": 1000 ** (i + 1) for i, p in enumerate("kmgt")},
    **{f"{p}ib": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
}


def parse_budget(text: str | float, base: int, *, per: int = 1) -> int:
    """A budget from a ratio of ``base`` (``0.8``) or an absolute count (``4.2M``, ``300e6``).

    A number with a K/M/G suffix, or one of 1000 or more, is a count; a smaller plain number
    is a ratio. ``per`` converts counts into the budget's unit (``--flops`` counts FLOPs, two
    per MAC, so it passes ``per=2``).
    """
    m = _COUNT.match(str(text))
    if not m:
        raise WidthSearchError(f"budget '{text}' is neither a ratio (0.8) nor a count (4.2M)")
    value, suffix = float(m.group(1)), m.group(2).lower()
    if not math.isfinite(value * _SUFFIX[suffix]):
        raise WidthSearchError(f"budget '{text}' is too large to be a number of params or MACs")
    if value <= 0:
        raise WidthSearchError(f"budget '{text}' must be positive")
    if suffix or value >= 1000:
        return math.floor(value * _SUFFIX[suffix] / per)
    return math.floor(value * base)


def parse_latency(text: str | float, base_ms: float) -> float:
    """A latency budget in ms: a ratio of the base's predicted latency (``0.9``) or a time
    (``12ms``, ``0.012s``; a number with a unit)."""
    m = _TIME.match(str(text))
    if not m:
        raise WidthSearchError(
            f"latency budget '{text}' is neither a ratio (0.9) nor a time (12ms, 0.012s)"
        )
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if value <= 0:
        raise WidthSearchError(f"latency budget '{text}' must be positive")
    return value * _TIME_UNITS[unit] if unit else value * base_ms


def parse_memory(text: str | float, base_bytes: int) -> int:
    """An activation-memory budget in bytes: a ratio of the base's (``0.8``) or a size
    (``300MB``, ``1.5GiB``, ``250e6B``; a number with a unit)."""
    m = _BYTES.match(str(text))
    if not m:
        raise WidthSearchError(
            f"memory budget '{text}' is neither a ratio (0.8) nor a size (300MB, 1.5GiB)"
        )
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if value <= 0:
        raise WidthSearchError(f"memory budget '{text}' must be positive")
    return math.floor(value * _BYTE_UNITS[unit] if unit else value * base_bytes)


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
            "solve_seconds": self.solve_seconds,
            "seconds": dict(self.seconds),
            "objective": self.objective,
            "objective_value": self.objective_value,
            "held": list(self.held),
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def reconfigure(
    space: WidthSpace,
    *,
    params: int | None = None,
    macs: int | None = None,
    latency: float | None = None,
    memory: int | None = None,
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
    objective: str = DEFAULT_OBJECTIVE,
) -> Reconfiguration:
    """Widths that maximize SynExp with params <= ``params`` and MACs <= ``macs`` (absolute),
    predicted latency <= ``latency`` ms on ``latency_model``'s device and training activation
    memory <= ``memory`` bytes (``memory_model``'s batch). A model given without its budget
    still reports its figures.

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

    Raises:
        BoundsError: bounds no width vector meets: ``min_width > max_width``, a group with no
            width on the grid, or budgets the widest widths already hold (nothing to solve).
        InfeasibleBudgetError: a budget is below what ``min_width`` allows.
        WidthSearchError: bad mode, objective or baseline names, or no budget at all.
    """
    budgets = Budgets(params=params, macs=macs, latency=latency, memory=memory)
    _check_request(mode, budgets, latency_model, memory_model, baselines)
    obj = get_objective(objective)
    max_width = _max_width(mode, max_width)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    lat_cost = None if latency_model is None else latency_model.cost
    mem_cost = None if memory_model is None else memory_model.cost
    hardware = {n: c for n, c in (("latency", lat_cost), ("memory", mem_cost)) if c is not None}
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
        program = SynExpProgram(space, latency=lat_cost, memory=mem_cost, **kw)
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
        batch_size=(
            latency_model.device.batch_size
            if latency_model is not None
            else memory_model.batch_size
            if memory_model is not None
            else 1
        ),
        latency_note=latency_note or ("" if latency_model is None else latency_model.source),
        costs=hardware,
        objective=obj.name,
        objective_value=None if separable is None else score(space, obj, widths),
        held=held,
    )
    if baselines:
        result = compare(result, space, baselines, synflow_progress=synflow_progress)
    return result


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
        raise WidthSearchError(f"mode must be one of {', '.join(MODES)}, not '{mode}'")
    if all(b is None for b in budgets.limits().values()):
        raise WidthSearchError(
            "give a budget: --params R, --flops R, --same-params, --same-flops, --latency R or "
            "--memory R"
        )
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
                f"precrop only removes channels: --max-width must be at most 1, not "
                f"{max_width:g} (--mode preconfig grows groups)"
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
    "Reconfiguration",
    "check_baselines",
    "compare",
    "parse_budget",
    "parse_latency",
    "parse_memory",
    "reconfigure",
    "run_baseline",
]
