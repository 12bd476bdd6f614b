"""A search trial: take a mix, solve it with the one solve, record.

A trial takes a constraint mix (budget ratios, width bounds, divisor, mode), turns it into a
:class:`~widthsearch.solve.solver.Problem` with the study's objective and grid, and solves it
with :func:`~widthsearch.solve.solver.solve`, the solve ``reconfig`` runs (so the same mix gives
the same widths there); it records the mix (the trial's params), the widths, and the study's
axes: the objective's value (log SynExp for ``synexp``; maximize), params and MACs (minimize),
and predicted latency on the study's device (minimize) when the study has a latency model
(``latency = true`` or a latency range); latency and activation-memory budget ratios join the
mix when their ranges are set. A mix that lands on widths an earlier trial found is marked
``duplicate_of`` and kept out of the front; an infeasible mix is pruned with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from widthsearch.errors import (
    BoundsError,
    GridError,
    InfeasibleBudgetError,
    RoundingError,
    SolverError,
)
from widthsearch.search.attrs import StudyAttr, TrialAttr
from widthsearch.search.front import widths_key
from widthsearch.search.hardware import HardwareModels
from widthsearch.search.settings import SearchConfig
from widthsearch.solve import TIME_LIMIT, Budgets, log_synexp
from widthsearch.solve.costs import COST_KINDS, get_cost
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE
from widthsearch.solve.solver import Problem, Solution, solve
from widthsearch.space import WidthSpace
from widthsearch.space.choices import GridSpec

if TYPE_CHECKING:
    import optuna


class Infeasible(Exception):
    """A mix without widths: its budgets are out of reach of its bounds, or (rarely) the
    solver failed on it. The trial is pruned, with the reason in the user attribute ``key``."""

    def __init__(self, message: str, key: str = TrialAttr.INFEASIBLE) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class SearchTrial:
    """One trial: take a mix, solve, record. Built once per process."""

    space: WidthSpace
    config: SearchConfig
    hardware: HardwareModels = HardwareModels()
    seen: dict[str, int] = field(default_factory=dict)
    """widths key -> first trial number, for this process (across workers the front dedups)."""

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """An Optuna sampler's mix (``max_width`` is asked for PreConfig only)."""
        r = self.config.ranges
        params: dict[str, Any] = {"mode": trial.suggest_categorical("mode", list(r.mode))}
        for name, budget in r.budgets[:2]:  # params and MACs first, as studies always drew
            if budget is not None:
                params[f"{name}_ratio"] = trial.suggest_float(f"{name}_ratio", *budget)
        params["min_width"] = trial.suggest_float("min_width", *r.min_width, log=True)
        if params["mode"] == "preconfig":
            params["max_width"] = trial.suggest_float("max_width", *r.max_width)
        params["divisor"] = trial.suggest_categorical("divisor", list(r.divisor))
        for name, budget in r.budgets[2:]:
            if budget is not None:
                params[f"{name}_ratio"] = trial.suggest_float(f"{name}_ratio", *budget)
        return params

    def problem(self, params: dict[str, Any]) -> Problem:
        """The one solve's problem of the mix ``params`` (absent budgets: unconstrained)."""
        space, hw = self.space, self.hardware
        base = {n: m(space.base_widths) for n, m in hw.models.items()}
        budgets = mix_budgets(full_mix(params), space, base=base)
        return trial_problem(self.config, params, budgets)

    def solve(self, params: dict[str, Any]) -> Solution:
        """The solution of the mix ``params``.

        Raises:
            Infeasible: the mix's budgets are out of reach of its bounds or grid (min > max
                included: pruned, not bent), or the solver failed on it (one mix of thousands
                must not end a search).
        """
        try:
            return solve(self.space, self.problem(params), self.hardware.costs)
        except (InfeasibleBudgetError, RoundingError, BoundsError, GridError) as exc:
            raise Infeasible(str(exc)) from None
        except SolverError as exc:
            raise Infeasible(str(exc), TrialAttr.SOLVER_FAILED) from None

    def evaluate(self, params: dict[str, Any]) -> tuple[list[int], tuple[float, ...]]:
        """Solve the mix ``params``: (widths, (objective value, params, MACs[, latency])).

        Raises:
            Infeasible: as :meth:`solve`.
        """
        solution = self.solve(params)
        return list(solution.widths), self._values(solution)

    def _values(self, solution: Solution) -> tuple[float, ...]:
        """The study's axes at the solution's widths: the objective's value (exact log SynExp
        for ``synexp``), params, MACs[, latency]."""
        space, widths = self.space, solution.widths
        value = log_synexp(space, widths) if solution.value is None else solution.value
        values: tuple[float, ...] = (value, space.params(widths), space.macs(widths))
        if "latency_ms" in self.config.axes:
            latency = self.hardware.latency
            assert latency is not None, "a latency axis comes with the study's latency model"
            values = (*values, latency(widths))
        return values

    def attrs(
        self, number: int, widths: Sequence[int], solution: Solution | None = None
    ) -> dict[str, Any]:
        """The user attributes of a feasible trial: its widths, its log SynExp where the
        objective is another, each modelled cost that is not an axis (activation memory where
        the study budgets it: the attribute ``memory_bytes``, its kind's key), what the solve
        decided, and ``duplicate_of`` the first trial with the same widths (:meth:`remember`
        that trial once it is stored)."""
        first = self.seen.get(widths_key(widths), number)
        out: dict[str, Any] = {TrialAttr.WIDTHS: list(widths)}
        if first != number:
            out[TrialAttr.DUPLICATE_OF] = first
        if self.config.axes[0] != "log_synexp":
            out[TrialAttr.LOG_SYNEXP] = log_synexp(self.space, widths)
        for name, model in self.hardware.models.items():
            key = get_cost(name).key
            if key not in self.config.axes:  # the others are trial values
                out[key] = model(widths)
        if solution is not None and solution.decisions:
            out[TrialAttr.DECISIONS] = list(solution.decisions)
        if solution is not None and solution.lattice is not None and not solution.exact:
            out[TrialAttr.GAP] = solution.gap
        return out

    def remember(self, number: int, widths: Sequence[int]) -> None:
        self.seen.setdefault(widths_key(widths), number)

    def run(self, number: int, params: dict[str, Any]) -> tuple[list[int], tuple, dict]:
        """Solve trial ``number``'s mix: (widths, axes values, user attributes).

        Raises:
            Infeasible: as :meth:`solve`.
        """
        solution = self.solve(params)
        widths = list(solution.widths)
        return widths, self._values(solution), self.attrs(number, widths, solution)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        """The objective for :meth:`optuna.study.Study.optimize` (the Optuna samplers)."""
        import optuna

        params = self.sample(trial)
        try:
            widths, values, attrs = self.run(trial.number, params)
        except Infeasible as exc:
            trial.set_user_attr(exc.key, str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self.remember(trial.number, widths)
        return values

    def load_seen(self, study: optuna.Study) -> None:
        """Width vectors already in the study; later ones are duplicates of the first."""
        import optuna

        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        for t in sorted(complete, key=lambda t: t.number):
            if TrialAttr.WIDTHS in t.user_attrs:
                self.seen.setdefault(widths_key(t.user_attrs[TrialAttr.WIDTHS]), t.number)


def full_mix(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's params as the mix the objective solves (absent budgets: unconstrained)."""
    return {
        "mode": params["mode"],
        **{f"{k}_ratio": params.get(f"{k}_ratio") for k in COST_KINDS},
        "min_width": params["min_width"],
        "max_width": params.get("max_width", 1.0) if params["mode"] == "preconfig" else 1.0,
        "divisor": params["divisor"],
    }


def mix_budgets(
    mix: Mapping[str, Any],
    space: WidthSpace,
    *,
    base: Mapping[str, float] | None = None,
    base_latency: float | None = None,
    base_memory: int | None = None,
) -> Budgets:
    """The absolute budgets of a :func:`full_mix`: each cost kind's ratio of the base's
    figure (params and MACs the space's; the others ``base``'s, where the study has their
    models), counts and bytes rounded down. What a trial solved, and what its width file
    records. ``base_latency`` and ``base_memory`` are two entries of ``base``."""
    figures: dict[str, float | None] = {"params": space.params(), "macs": space.macs()}
    figures |= {"latency": base_latency, "memory": base_memory} | dict(base or {})
    out: dict[str, float | None] = {}
    for kind in COST_KINDS.values():
        ratio, figure = mix.get(kind.ratio_key), figures.get(kind.name)
        if ratio is None or figure is None:
            continue
        value = ratio * figure
        out[kind.name] = value if kind.unit == "ms" else math.floor(value)
    return Budgets(**out)


def trial_problem(
    config: SearchConfig | Mapping[str, Any],
    params: Mapping[str, Any],
    budgets: Budgets | None = None,
) -> Problem:
    """The one solve's problem of a trial with mix ``params``: its mode, bounds and divisor,
    the study's grid, objective and time limit (from its ``config``, or the study attributes
    of a stored study), and ``budgets`` (default none: the controls of a verification set
    their own)."""
    mix = full_mix(params)
    if isinstance(config, SearchConfig):
        grid, objective, limit = config.grid, config.objective, config.time_limit
    else:
        grid = GridSpec.from_dict(config.get(StudyAttr.GRID))
        objective = config.get(StudyAttr.OBJECTIVE, DEFAULT_OBJECTIVE)
        limit = config.get(StudyAttr.TIME_LIMIT, TIME_LIMIT)
    return Problem(
        budgets or Budgets(),
        objective=objective,
        mode=mix["mode"],
        min_width=mix["min_width"],
        max_width=mix["max_width"],
        divisor=int(mix["divisor"]),
        grid=grid,
        time_limit=limit,
    )


__all__ = ["Infeasible", "SearchTrial", "full_mix", "mix_budgets", "trial_problem"]
