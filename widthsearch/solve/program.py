"""The SynExp geometric program: widths that maximize Σ log p_l under parameter and MAC budgets.

Over the multipliers ``x_g = w_g / base_g`` of the free groups:

    maximize    Π_l p_l(x)                 (a monomial: p_l = x_in · x_out, depthwise x_g)
    subject to  params(x) <= B_p,  MACs(x) <= B_m,  x_min <= x <= x_max
                latency(x) <= B_t,  memory(x) <= B_a      (when the program has them)

Latency is a device's fitted latency model (:mod:`widthsearch.hardware.latency_model`) and memory
the exact activation bytes of a training step (:mod:`widthsearch.hardware.memory`); both are
posynomials of the widths too, so they are constraints of the same program, built in when it is
constructed.

Costs are posynomials (:mod:`widthsearch.space.cost`), so this is a geometric program, solved by
cvxpy in its disciplined geometric programming mode. The problem is built once per width space with
``cp.Parameter`` budgets and bounds: later solves only substitute numbers into the compiled cone
program and call the solver (about 10 ms for EfficientNet-B0).

Modes: **PreCrop** prunes whole channels (``x_max <= 1``, default 1); **PreConfig** lets groups grow
and reshapes the network at the same cost. A cap is needed then, or the cheapest groups grow without
bound; :data:`DEFAULT_MAX_WIDTH` = 2 is the range timm's own width multipliers span within a family
(EfficientNet-B0 to B7, ResNet-50 to Wide-ResNet-50-2), which keeps activations memory and latency,
which SynExp does not see, within what those architectures already accept.

A layer that reads concatenated groups (DenseNet) has density ``Σ_a W_a x_a / Σ_a W_a · x_out``,
a posynomial, which a geometric program cannot maximize; the solver uses its weighted geometric
mean ``Π_a x_a^(W_a/ΣW)`` instead, a lower bound that is exact when the segments scale alike.
Reported SynExp is always the exact one (:func:`widthsearch.solve.synexp.log_synexp`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from widthsearch.errors import BoundsError, InfeasibleBudgetError, SolverError, WidthSearchError
from widthsearch.solve.costs import COST_KINDS, get_cost
from widthsearch.solve.synexp import WEIGHT_KINDS
from widthsearch.space.cost import parts
from widthsearch.space.grid import MAX_WIDTH_RATIO, check_bounds

if TYPE_CHECKING:
    from widthsearch.space.cost import MaxPosynomial, Posynomial
    from widthsearch.space.width_space import WidthSpace

Mode = Literal["precrop", "preconfig"]
MODES: tuple[Mode, ...] = ("precrop", "preconfig")
DEFAULT_MAX_WIDTH = 2.0
"""PreConfig's default cap on any group's multiplier (see the module docstring)."""
DEFAULT_MIN_WIDTH = 0.1
"""Default floor on any group's multiplier: no group is cut below a tenth of its base width."""


class Budgets:
    """Absolute budgets, one per cost kind (:data:`~widthsearch.solve.costs.COST_KINDS`:
    params and MACs counts, predicted milliseconds per batch on the profiled device, bytes of
    activation memory, ...); ``None`` leaves that cost unconstrained.

    ``Budgets(params=4_000_000, macs=None)``; each kind is an attribute (``budgets.macs``).
    Immutable and hashable; :meth:`replace` returns a changed copy.

    Raises:
        TypeError: a keyword that names no cost kind.
    """

    __slots__ = ("_limits",)
    _limits: dict[str, float | None]

    def __init__(self, **limits: float | None) -> None:
        unknown = [k for k in limits if k not in COST_KINDS]
        if unknown:
            raise TypeError(
                f"Budgets() got an unknown cost '{unknown[0]}'; costs: {', '.join(COST_KINDS)}"
            )
        object.__setattr__(self, "_limits", {k: limits.get(k) for k in COST_KINDS})

    def __getattr__(self, name: str) -> float | None:
        try:
            return self._limits[name]
        except KeyError:
            raise AttributeError(f"'Budgets' has no cost '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Budgets are immutable; use replace()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Budgets) and self.limits() == other.limits()

    def __hash__(self) -> int:
        return hash(tuple(self._limits.items()))

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self._limits.items() if v is not None)
        return f"Budgets({given})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_budgets, (self.limits(),))

    def limits(self) -> dict[str, float | None]:
        """Cost name -> budget, for every cost kind, in registry order."""
        return dict(self._limits)

    def replace(self, **changes: float | None) -> Budgets:
        """A copy with ``changes`` (cost name -> budget or None)."""
        return Budgets(**{**self._limits, **changes})


def _budgets(limits: dict[str, float | None]) -> Budgets:
    return Budgets(**limits)


def describe_cost(name: str, value: float) -> str:
    """A cost value in its kind's unit: counts with commas, milliseconds, bytes."""
    return get_cost(name.split("[", 1)[0]).describe(value)


def cost_label(name: str) -> str:
    """How messages name the cost ``name`` (or a part of a peak, ``name[i]``): ``"MACs"``."""
    return get_cost(name.split("[", 1)[0]).label


@dataclass(frozen=True)
class ContinuousSolution:
    """The solver's optimum, before rounding to integer widths."""

    multipliers: tuple[float, ...]
    """Per group (fixed groups at 1)."""
    status: str
    seconds: float


def _posynomial_expr(poly: Posynomial, base: Sequence[int], index: dict[int, int], x):
    """A cvxpy expression for ``poly`` over the free-group multipliers ``x`` (fixed groups = 1).

    Every monomial of our cost model has degree at most two (dense layers: ``x_in · x_out``),
    so the posynomial is three vectorized sums, which compiles far faster than one atom per term.
    """
    import cvxpy as cp
    import numpy as np

    c2, i2, j2, c1, i1, c0 = [], [], [], [], [], 0.0
    for coef, mono in poly.in_multipliers(base):
        free = [g for g, e in mono.items() if g in index for _ in range(e)]
        if not free:
            c0 += coef
        elif len(free) == 1:
            c1.append(coef)
            i1.append(index[free[0]])
        elif len(free) == 2:
            c2.append(coef)
            i2.append(index[free[0]])
            j2.append(index[free[1]])
        else:  # pragma: no cover - no layer kind produces these
            raise AssertionError(f"monomial of degree {len(free)}")
    expr = 0
    if c2:
        expr = expr + cp.sum(cp.multiply(np.array(c2), cp.multiply(x[i2], x[j2])))
    if c1:
        expr = expr + cp.sum(cp.multiply(np.array(c1), x[i1]))
    return expr, c0


def objective_exponents(space: WidthSpace) -> dict[int, float]:
    """Exponent of each group in the SynExp monomial ``Π_l p_l`` (concatenations: AM-GM weights)."""
    exps: dict[int, float] = {}
    base = space.base_widths
    for lay in space.layers:
        if lay.kind not in WEIGHT_KINDS:
            continue
        sides = [lay.out_groups] if lay.kind == "depthwise" else [lay.in_groups, lay.out_groups]
        for side in sides:
            total = sum(base[g] for g in side)
            for g in side:
                exps[g] = exps.get(g, 0.0) + base[g] / total
    return exps


class SynExpProgram:
    """The SynExp geometric program of one width space, compiled once and re-solved.

    ``log_weights`` or ``inverse_weights`` (by group id, from
    :func:`widthsearch.solve.objectives.weights`) replace SynExp's exponents by another separable
    objective: maximize ``Π x_g^a_g``, or minimize ``Σ b_g / w_g``.

    ``costs`` (cost name -> posynomial of the group widths, or a peak of several: a device's
    latency model, the activation memory, see :mod:`widthsearch.solve.costs`) add those costs
    as constraints, one per part of a peak; budgets for them need a program built with them.
    ``latency`` and ``memory`` are two such costs, by keyword.

    Example:
        >>> program = SynExpProgram(space)
        >>> sol = program.solve(Budgets(macs=space.macs()), min_width=0.1, max_width=2.0)
    """

    def __init__(
        self,
        space: WidthSpace,
        *,
        costs: Mapping[str, Posynomial | MaxPosynomial] | None = None,
        latency: Posynomial | None = None,
        memory: Posynomial | None = None,
        log_weights: Sequence[float] | None = None,
        inverse_weights: Sequence[float] | None = None,
    ) -> None:
        import cvxpy as cp
        import numpy as np

        self.space = space
        self.free = [g.id for g in space.groups if not g.fixed]
        if not self.free:
            raise WidthSearchError(f"{space.model} has no free channel group to resize")
        index = {g: i for i, g in enumerate(self.free)}
        n = len(self.free)
        base = space.base_widths
        exps = objective_exponents(space)
        self.costs: dict[str, Posynomial | MaxPosynomial] = {
            "params": space.param_cost,
            "macs": space.mac_cost,
        }
        """Every cost the program constrains, by name (see :mod:`widthsearch.solve.costs`)."""
        extra = {**(costs or {})}
        if latency is not None:
            extra["latency"] = latency
        if memory is not None:
            extra["memory"] = memory
        self.costs.update((k, v) for k, v in extra.items() if k not in ("params", "macs"))
        self.parts = {
            (name if len(parts(cost)) == 1 else f"{name}[{i}]"): (name, part)
            for name, cost in self.costs.items()
            for i, part in enumerate(parts(cost))
        }
        """Constraint name -> (cost name, posynomial): one per cost, one per part of a peak."""
        self.x = cp.Variable(n, pos=True, name="x")
        self.budget = {c: cp.Parameter(pos=True, name=f"{c}_budget") for c in self.parts}
        self.params_budget, self.macs_budget = self.budget["params"], self.budget["macs"]
        self.lower = cp.Parameter(n, pos=True, name="x_min")
        self.upper = cp.Parameter(n, pos=True, name="x_max")
        self.objective_weights = self._weights(exps, log_weights, inverse_weights)
        """The objective's weight of each free group (in ``free`` order)."""
        self.minimizes = inverse_weights is not None
        """True for an inverse objective (minimize ``Σ b_g / w_g``)."""
        weights = self.objective_weights
        if min(weights) <= 0:  # pragma: no cover - every free group feeds some weight layer
            raise WidthSearchError("a free group touches no weight layer of the objective")
        objective: cp.Maximize | cp.Minimize
        if inverse_weights is not None:
            # Σ b_g / (base_g x_g), normalized by its value at the base: a posynomial to minimize
            coef = np.array([b / base[g] for g, b in zip(self.free, weights, strict=True)])
            objective = cp.Minimize(cp.sum(cp.multiply(coef / coef.sum(), self.x**-1)))
        else:
            # Π x_g^(n_g / Σn): the SynExp monomial on a geometric-mean scale, one power atom
            # per group. Normalizing keeps the log objective O(1), which Clarabel needs on
            # DenseNet; cp.geo_mean would build a rational power tree meant for DCP (1.3 s here).
            total = sum(weights)
            objective = cp.Maximize(
                cp.prod(cp.hstack([self.x[i] ** (w / total) for i, w in enumerate(weights)]))
            )
        # Budgets enter as "variable part <= budget - constant part"; a budget at or below the
        # constant part is infeasible and caught before solving.
        self._const: dict[str, float] = {}
        constraints = []
        for cname, (_, poly) in self.parts.items():
            expr, self._const[cname] = _posynomial_expr(poly, base, index, self.x)
            if isinstance(expr, int):  # a part no width moves: the feasibility check decides
                continue
            constraints.append(expr <= self.budget[cname])
        self._p_const, self._m_const = self._const["params"], self._const["macs"]
        self.problem = cp.Problem(
            objective, [*constraints, self.x >= self.lower, self.x <= self.upper]
        )
        self.solves = 0

    def _weights(
        self,
        exps: dict[int, float],
        log_weights: Sequence[float] | None,
        inverse_weights: Sequence[float] | None,
    ) -> list[float]:
        """The objective's weight of each free group: SynExp's exponents unless log or inverse
        weights (by group id, :func:`widthsearch.solve.objectives.weights`) are handed in."""
        if log_weights is not None and inverse_weights is not None:
            raise WidthSearchError("an objective has log weights or inverse weights, not both")
        given = log_weights if log_weights is not None else inverse_weights
        if given is None:
            return [exps.get(g, 0.0) for g in self.free]
        if len(given) != len(self.space.groups):
            raise WidthSearchError(
                f"{len(given)} objective weights for {len(self.space.groups)} groups"
            )
        return [float(given[g]) for g in self.free]

    def uniform_costs(self, multiplier: float) -> dict[str, float]:
        """Every cost with every free group at ``multiplier`` (costs grow with it, so at
        ``min_width`` these are the smallest reachable); a peak at its largest part."""
        x = [1.0 if g.fixed else multiplier for g in self.space.groups]
        base = self.space.base_widths
        return {
            name: max(_eval_multipliers(p, base, x) for p in parts(cost))
            for name, cost in self.costs.items()
        }

    def solve(self, budgets: Budgets, *, min_width: float, max_width: float) -> ContinuousSolution:
        """Maximize SynExp under ``budgets`` with every free multiplier in [min_width, max_width].

        Raises:
            BoundsError: the bounds are empty or beyond :data:`MAX_WIDTH_RATIO`.
            InfeasibleBudgetError: a budget is below what ``min_width`` allows.
            SolverError: the solver failed.
            WidthSearchError: a latency or memory budget for a program built without that cost.
        """
        import cvxpy as cp
        import numpy as np

        check_bounds(min_width, max_width)
        check_feasible(self, budgets, min_width)
        start = time.perf_counter()
        big = self.uniform_costs(max_width)
        slack = 2.0  # an unconstrained cost gets a budget it can never reach
        limits = budgets.limits()
        for cname, param in self.budget.items():
            name = self.parts[cname][0]
            limit = limits[name]
            b = limit if limit is not None else slack * big[name]
            param.value = max(b - self._const[cname], 1e-9)
        n = len(self.free)
        self.lower.value = np.full(n, min_width)
        self.upper.value = np.full(n, max_width)
        try:
            with warnings.catch_warnings():  # DenseNet's many concat terms; nothing to act on
                warnings.filterwarnings("ignore", message=".*too many subexpressions")
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                self.problem.solve(gp=True, solver=cp.CLARABEL)
        except cp.error.SolverError as exc:  # pragma: no cover - numerical trouble
            raise SolverError(f"the geometric program failed: {exc}") from exc
        self.solves += 1
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(f"the geometric program ended {self.problem.status}")
        values = self.x.value
        assert values is not None  # an optimal status comes with a value
        slop = 1e-6  # the interior-point solver's tolerance; anything more is a real violation
        if values.min() < min_width * (1 - slop) or values.max() > max_width * (1 + slop):
            raise SolverError(  # pragma: no cover - the box is a constraint of the program
                f"the geometric program returned multipliers {values.min():.4g}-"
                f"{values.max():.4g} outside the bounds {min_width:g}-{max_width:g}"
            )
        values = np.clip(values, min_width, max_width)
        mult = [1.0] * len(self.space.groups)
        for g, v in zip(self.free, values, strict=True):
            mult[g] = float(v)
        return ContinuousSolution(tuple(mult), self.problem.status, time.perf_counter() - start)


def _eval_multipliers(poly: Posynomial, base: Sequence[int], x: Sequence[float]) -> float:
    return sum(
        c * math.prod(x[g] ** e for g, e in mono.items()) for c, mono in poly.in_multipliers(base)
    )


def check_feasible(program: SynExpProgram, budgets: Budgets, min_width: float) -> None:
    """Fail before solving when a budget is below the cheapest model the bounds allow."""
    limits = budgets.limits()
    missing = [n for n, b in limits.items() if b is not None and n not in program.costs]
    if missing:
        raise WidthSearchError(
            f"a {missing[0]} budget needs a program built with a {missing[0]} model"
        )
    smallest = program.uniform_costs(min_width)
    for name, poly in program.costs.items():
        budget = limits[name]
        if budget is not None and budget < smallest[name]:
            base = poly(program.space.base_widths)
            raise InfeasibleBudgetError(
                options=f"{cost_label(name)} {budget / base:.3g}x ({describe_cost(name, budget)}) "
                f"is below the {smallest[name] / base:.3g}x "
                f"({describe_cost(name, smallest[name])}) reachable with "
                f"{{min_width}}={min_width:g}; raise the budget or lower {{min_width}}"
            )


__all__ = [
    "DEFAULT_MAX_WIDTH",
    "DEFAULT_MIN_WIDTH",
    "MAX_WIDTH_RATIO",
    "MODES",
    "BoundsError",
    "Budgets",
    "ContinuousSolution",
    "InfeasibleBudgetError",
    "Mode",
    "SolverError",
    "SynExpProgram",
    "check_bounds",
    "check_feasible",
    "cost_label",
    "describe_cost",
    "objective_exponents",
]
