"""Objectives: what a width vector is scored by, as data every solver can read.

Every objective here is **separable over channel groups**: its value at widths ``w`` is
``Σ_g s_g(w_g)`` (plus a constant), with per-group terms

    s_g(w) = a_g · log(w / base_g)  −  b_g / w

so the geometric program can take it (``a``: maximize the monomial ``Π x_g^a_g``; ``b``:
minimize the posynomial ``Σ b_g / w_g``), rounding can score one group's step by one term, and an
exact lattice search can add per-group score vectors (:func:`group_terms`). One objective uses
``a`` or ``b``, not both: no constant weighs one against the other. An objective may also
**hold** the cost the user did not budget (see ``synexp-held``), which changes the budgets, not
the score.

The objectives, each derived from a model of the network at initialization and none fitted to
any table of trained accuracy:

- ``synexp`` (default, the reference; Cai et al., arXiv 2203.02549): the expected SynFlow
  score under random masks of the layer densities, ``Σ_l log p_l``; ``a_g`` is the number of
  weight layers that read or write group ``g`` (depthwise convs once), so a residual stream
  counts once per block that touches it.
- ``groups``: each channel group once, ``a_g = 1``: the log expected number of input-to-output
  channel paths that survive random channel masks of keep fractions ``x_g`` along a path that
  visits every group once. (On a plain chain this is SynExp halved, the same argmax; it differs
  where SynExp counts a stream several times.)
- ``synexp-held``: SynExp, with the cost that has no budget held at what the uniform multiplier
  within the budget spends (for a MACs budget, params at most the uniform's params, and the
  other way round): the paper's PreConfig keeps both costs at the base; this keeps a shape from
  buying SynExp with the cost the user did not bound.
- ``depth-width``: minus the depth-to-width ratio ``β = Σ_l 1/n_l`` over the output widths of
  the weight layers (the classifier's is fixed), which governs the fluctuations of activations and
  gradients of a ReLU network at initialization (Hanin & Nica, "Finite depth and width
  corrections to the neural tangent kernel", ICLR 2020): smaller is more trainable.
  ``b_g`` is the number of weight layers whose output is group ``g``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from widthsearch.errors import WidthSearchError
from widthsearch.solve.program import objective_exponents
from widthsearch.space.groups import WEIGHT_KINDS

if TYPE_CHECKING:
    import numpy as np

    from widthsearch.space.width_space import Group, WidthSpace

Score = Callable[["Group", "np.ndarray"], "np.ndarray"]
"""A separable objective's term: a group and an array of its widths -> the term's values."""

Weights = Callable[["WidthSpace"], dict[int, float]]


@dataclass(frozen=True)
class Objective:
    """A separable objective: per-group log weights ``a`` or inverse weights ``b``.

    **The contract** (what an objective declares, and what every command does with it):

    - It is **separable over channel groups**: its value at widths ``w`` is
      ``Σ_g a_g log(w_g / base_g) - b_g / w_g`` plus a constant, with the weights a function of
      the width space alone (``log_weights(space)`` or ``inverse_weights(space)``: group id ->
      weight, absent groups 0). One of the two, never both: no constant weighs them.
    - ``log_weights`` objectives are **log-linear** (maximize the monomial ``Π x_g^a_g``) and
      ``inverse_weights`` ones minimize the posynomial ``Σ b_g / w_g``: both are geometric
      programs, so the one solve (:func:`widthsearch.solve.solver.solve`) maximizes them on the
      divisor grid (the program, then rounding that scores each step by one group's term) and
      exactly on a width grid (the lattice search adds per-group score tables). Weights must be
      non-negative and every free group must get a positive one (the program refuses a free
      group the objective ignores).
    - ``hold``: the solve holds params or MACs, whichever has no budget, at the uniform
      multiplier's within the given budgets (a :class:`~widthsearch.solve.solver.HoldUnbudgeted`
      reduction); the result names the held cost.
    - Its **value** is :func:`score` relative to the base widths (0 at the base; higher is
      better). ``reconfig`` prints it, width files record the name and value, a search study
      records the name and its trials' first value is it (their log SynExp stays an attribute),
      ``front`` and reports rank by it, verification picks a study's candidates by it.

    Registered with :func:`register_objective`, an objective is reachable by name everywhere:
    ``reconfig --objective``, ``search --objective``, a study file's ``[search] objective``,
    :func:`~widthsearch.solve.reconfigure` and :class:`~widthsearch.solve.solver.Problem`.
    """

    name: str
    summary: str
    """One line for ``--help`` and reports."""
    log_weights: Weights | None = None
    """``a_g`` per group id (maximize ``Σ a_g log x_g``); None for an inverse objective."""
    inverse_weights: Weights | None = None
    """``b_g`` per group id (minimize ``Σ b_g / w_g``); None for a log objective."""
    hold: bool = False
    """Hold the cost without a budget at the uniform multiplier's within the budget."""


def _groups_once(space: WidthSpace) -> dict[int, float]:
    weighted = [lay for lay in space.layers if lay.kind in WEIGHT_KINDS]
    touched = {g for lay in weighted for g in lay.in_groups + lay.out_groups}
    return {g.id: 1.0 for g in space.groups if g.id in touched}


def _outputs(space: WidthSpace) -> dict[int, float]:
    """Per group, the number of weight layers whose output it is (the classifier writes a fixed
    group, whose width never changes)."""
    counts: dict[int, float] = {}
    for lay in space.layers:
        if lay.kind not in WEIGHT_KINDS:
            continue
        for g in lay.out_groups:
            counts[g] = counts.get(g, 0.0) + 1.0
    return counts


OBJECTIVES: dict[str, Objective] = {}
"""Every objective by name; :data:`DEFAULT_OBJECTIVE` is the reference."""


def register_objective(objective: Objective) -> Objective:
    """Add ``objective`` to :data:`OBJECTIVES` (a name may be registered once).

    Raises:
        ValueError: a name registered already, or weights of both kinds (see the contract).
    """
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective '{objective.name}' is registered already")
    if (objective.log_weights is None) == (objective.inverse_weights is None):
        raise ValueError(f"objective '{objective.name}' needs log or inverse weights, not both")
    OBJECTIVES[objective.name] = objective
    return objective


for _objective in (
    Objective(
        "synexp",
        "the paper's SynExp: sum of log layer densities (the reference)",
        log_weights=objective_exponents,
    ),
    Objective(
        "groups",
        "expected surviving channel paths, each channel group counted once",
        log_weights=_groups_once,
    ),
    Objective(
        "synexp-held",
        "SynExp, the unbudgeted cost held at the uniform multiplier's",
        log_weights=objective_exponents,
        hold=True,
    ),
    Objective(
        "depth-width",
        "minus the depth-to-width ratio sum 1/n_l (trainability at init)",
        inverse_weights=_outputs,
    ),
):
    register_objective(_objective)
DEFAULT_OBJECTIVE = "synexp"


def get_objective(name: str | Objective) -> Objective:
    """The objective called ``name`` (an :class:`Objective` is returned as it is).

    Raises:
        WidthSearchError: an unknown name; the message lists the known ones.
    """
    if isinstance(name, Objective):
        return name
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise WidthSearchError(
            f"unknown objective '{name}'; choose from {', '.join(OBJECTIVES)}"
        ) from None


def weights(space: WidthSpace, objective: str | Objective) -> tuple[list[float], list[float]]:
    """``(a, b)``: the objective's log and inverse weight of every group, by group id (fixed
    groups included; their widths never change, so their terms are constants)."""
    obj = get_objective(objective)
    n = len(space.groups)
    a = obj.log_weights(space) if obj.log_weights else {}
    b = obj.inverse_weights(space) if obj.inverse_weights else {}
    return [a.get(g, 0.0) for g in range(n)], [b.get(g, 0.0) for g in range(n)]


def group_terms(space: WidthSpace, objective: str | Objective) -> Score:
    """The objective's term of one group at an array of its widths, ``a_g log(w / base_g) -
    b_g / w``: the lattice search adds one table per group (their sum is :func:`score` up to
    a constant)."""
    import numpy as np

    a, b = weights(space, objective)

    def term(group: Group, widths: np.ndarray) -> np.ndarray:
        g = group.id
        return a[g] * np.log(widths / group.width) - b[g] / widths

    return term


def score(space: WidthSpace, objective: str | Objective, widths: Sequence[float]) -> float:
    """The objective at ``widths`` (0 at the base widths for a log objective; higher is better).

    For ``synexp`` on a model with concatenations the GP's weights are a lower bound of the exact
    SynExp (:func:`widthsearch.solve.synexp.log_synexp`), which reports use instead.
    """
    a, b = weights(space, objective)
    base = space.base_widths
    return sum(
        a[g] * math.log(w / base[g]) - b[g] / w + b[g] / base[g] for g, w in enumerate(widths)
    )


__all__ = [
    "DEFAULT_OBJECTIVE",
    "OBJECTIVES",
    "Objective",
    "get_objective",
    "group_terms",
    "register_objective",
    "score",
    "weights",
]
