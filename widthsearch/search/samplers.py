"""Sampler mixes: how each trial of a study gets its constraint mix.

A mix is a trial's params: the mode, the budget ratios that vary, the width bounds and the
divisor (:func:`mix_distributions` gives their Optuna distributions). Every trial is already
the SynExp optimum of its own budgets, so nearly every trial is Pareto-optimal and the front is
a surface over the budget space: what a sampler has to do is cover that space evenly, not home
in on a region. The default, ``qmc`` (:class:`SobolMixes`), gives trial number n point n of a
scrambled Sobol sequence over the mix ranges (seeded, the seed kept in the study): the first
2^k trials are balanced in every coordinate, trial numbers are unique across workers and
machines so no two trials take the same point, and a resumed study continues the sequence. It
costs nothing per trial. ``tpe`` and ``nsga2`` (Optuna's model-based samplers) and ``random``
(:func:`make_sampler`) run through :meth:`optuna.study.Study.optimize`; TPE's multi-objective
cost grows with the trials (about 1 trial/s by trial 1,500). ``benchmarks/bench_search.py``
compares them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from widthsearch.errors import StudyConfigError
from widthsearch.search.settings import Ranges
from widthsearch.solve.costs import COST_KINDS

if TYPE_CHECKING:
    import optuna


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


def mix_distributions(ranges: Ranges, mode: str | None = None) -> dict[str, Any]:
    """The Optuna distributions of a mix's params (``max_width`` for PreConfig only)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    dists: dict[str, Any] = {"mode": CategoricalDistribution(list(ranges.mode))}
    for name, r in ranges.budgets:
        if r is not None:
            dists[f"{name}_ratio"] = FloatDistribution(*r)
    dists["min_width"] = FloatDistribution(*ranges.min_width, log=True)
    if mode in (None, "preconfig"):
        dists["max_width"] = FloatDistribution(*ranges.max_width)
    dists["divisor"] = CategoricalDistribution(list(ranges.divisor))
    return dists


class SobolMixes:
    """The ``qmc`` sampler: trial number n takes point n of a scrambled Sobol sequence.

    One coordinate per range that varies (budgets first: Sobol's first coordinates are its
    most even), mapped linearly (``min_width`` logarithmically) or, for choices, by equal
    slices of [0, 1). ``max_width`` always has its coordinate, so the points do not depend on
    the mode. Trial numbers are unique across every worker of a study, so no point is taken
    twice, and a resumed study goes on where it stopped.
    """

    BOUNDS = ("mode", "min_width", "max_width", "divisor")
    """The mix's keys after the budget ratios (one per cost kind, in registry order)."""

    @staticmethod
    def order() -> tuple[str, ...]:
        """The mix's keys in coordinate order: budget ratios first, then :attr:`BOUNDS`."""
        return (*(f"{k}_ratio" for k in COST_KINDS), *SobolMixes.BOUNDS)

    def __init__(self, ranges: Ranges, seed: int) -> None:
        from scipy.stats import qmc

        dists = mix_distributions(ranges)
        self.fixed: dict[str, Any] = {}
        self.coords: list[tuple[str, Any]] = []
        for name in self.order():
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
        return {k: values[k] for k in self.order() if k in values}


def _from_unit(d: Any, u: float) -> Any:
    choices = getattr(d, "choices", None)
    if choices is not None:
        return choices[min(int(u * len(choices)), len(choices) - 1)]
    if d.log:
        return math.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
    return d.low + u * (d.high - d.low)


__all__ = ["SobolMixes", "make_sampler", "mix_distributions"]
