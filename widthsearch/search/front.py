"""Pareto fronts of search studies, and the thinned front that ``front`` and reports show.

Every trial of a search is the SynExp optimum of its own budgets, so much of a study is
Pareto-optimal in (max log SynExp, min params, min MACs): the front is a surface over the
budget space. :func:`front` finds it (duplicates out); :func:`thin_front` keeps a readable
part of it by ε-dominance in the costs, with a stated guarantee for every point left out.
:func:`load_front` reads a stored study's front with what the ``front`` command prints.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from widthsearch.search.attrs import StudyAttr, TrialAttr
from widthsearch.search.settings import AXES
from widthsearch.search.study import finished_count, load_search_study
from widthsearch.solve.costs import COST_KINDS
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE
from widthsearch.storage import storage_name

if TYPE_CHECKING:
    import numpy as np
    import optuna

DEFAULT_ROWS = 40
"""Rows of a thinned front when no step is given: the finest of :data:`EPS_STEPS` that fits."""
EPS_STEPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
"""Relative cost steps :func:`choose_eps` tries, finest first."""


def widths_key(widths: Sequence[int]) -> str:
    """A short key of a width vector (duplicates have the same one)."""
    return hashlib.sha1(",".join(map(str, widths)).encode()).hexdigest()[:16]


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` (n x k, every column minimized) no other row dominates."""
    import numpy as np

    keep = np.ones(len(points), dtype=bool)
    for i in range(len(points)):
        if keep[i]:
            p = points[i]
            beaten = np.all(p <= points, axis=1) & np.any(p < points, axis=1)
            keep[beaten] = False
    return keep


def front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal complete trials (max log SynExp, min params, min MACs and, where it is an
    objective, min predicted latency), duplicates out."""
    import numpy as np
    import optuna

    seen: set[str] = set()
    points = []
    for t in sorted(
        study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
        key=lambda t: t.number,
    ):
        a = t.user_attrs
        if TrialAttr.DUPLICATE_OF in a or TrialAttr.WIDTHS not in a or t.values is None:
            continue
        key = widths_key(a[TrialAttr.WIDTHS])
        if key in seen:  # a duplicate two workers found at once
            continue
        seen.add(key)
        points.append(t)
    if not points:
        return []
    objs = np.array([(-t.values[0], *t.values[1:]) for t in points], dtype=float)
    return [t for t, k in zip(points, pareto_mask(objs), strict=True) if k]


def thin_front(points: Sequence[dict[str, Any]], eps: float) -> list[dict[str, Any]]:
    """A readable front: ε-dominance in the costs.

    The costs (params, MACs and, in a study with a latency objective, predicted latency) are
    cut into cells of relative size ``1 + eps`` (log scale); each cell keeps its point with the
    highest objective value (log SynExp for SynExp studies), and a cell's point is dropped when
    a point in a cell no costlier in every cost has at least its value. So every point left
    out has a shown point within ``1 + eps`` times each of its costs with at least its value.
    ``points`` are :func:`trial_summary` dicts (the front); ``eps=0`` returns them all.
    """
    if eps <= 0 or not points:
        return list(points)
    import numpy as np

    costs = ["params", "macs"]
    if all(t.get("latency_ms") for t in points):
        costs.append("latency_ms")
    step = math.log1p(eps)
    best: dict[tuple[int, ...], dict[str, Any]] = {}
    for t in points:
        cell = tuple(math.floor(math.log(t[c]) / step) for c in costs)
        if cell not in best or _value(t) > _value(best[cell]):
            best[cell] = t
    cells = list(best)
    objs = np.array([(*c, -_value(best[c])) for c in cells], dtype=float)
    # weak dominance: an equal-cell point cannot beat itself (one per cell), so <= suffices
    keep = np.ones(len(cells), dtype=bool)
    for i in range(len(cells)):
        others = np.all(objs <= objs[i], axis=1)
        others[i] = False
        keep[i] = not others.any()
    shown = [best[c] for c, k in zip(cells, keep, strict=True) if k]
    return sorted(shown, key=lambda t: (t["macs"], t["params"]))


def _value(t: dict[str, Any]) -> float:
    """A trial summary's objective value (summaries written before it had one: log SynExp)."""
    return t["value"] if t.get("value") is not None else t["log_synexp"]


def trial_summary(t: optuna.trial.FrozenTrial, space_base: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready description of a finished trial (``space_base``: the base's value of every
    cost kind by its key: params, MACs and, where the study has them, latency_ms,
    memory_bytes, ...). Costs are the trial's values (params, MACs, latency where it is an
    axis) or its attributes (the other modelled costs, by their key)."""
    a = t.user_attrs
    value, params, macs = t.values[:3] if t.values else (None, None, None)
    log_s = a.get(TrialAttr.LOG_SYNEXP, value)  # a SynExp study's value is log SynExp
    figures: dict[str, Any] = {
        "params": None if params is None else int(params),
        "macs": None if macs is None else int(macs),
        "latency_ms": t.values[3] if t.values and len(t.values) > 3 else None,
    }
    costs: dict[str, Any] = {}
    for kind in COST_KINDS.values():
        new = figures.get(kind.key, a.get(kind.key))
        base = space_base.get(kind.key)
        costs[kind.key] = new
        costs[kind.ratio_key] = None if new is None or not base else new / base
    return {
        "number": t.number,
        "state": t.state.name,
        "log_synexp": log_s,
        "value": value,
        **costs,
        "mix": dict(t.params),
        "widths": a.get(TrialAttr.WIDTHS),
        "duplicate_of": a.get(TrialAttr.DUPLICATE_OF),
        "infeasible": a.get(TrialAttr.INFEASIBLE),
        "solver_failed": a.get(TrialAttr.SOLVER_FAILED),
        "decisions": a.get(TrialAttr.DECISIONS) or [],
        "gap": a.get(TrialAttr.GAP),
    }


def choose_eps(points: Sequence[dict[str, Any]], rows: int = DEFAULT_ROWS) -> float:
    """The finest step of :data:`EPS_STEPS` whose :func:`thin_front` has at most ``rows``
    points (0 when the whole front fits; the coarsest step when none does)."""
    if len(points) <= rows:
        return 0.0
    for eps in EPS_STEPS:
        if len(thin_front(points, eps)) <= rows:
            return eps
    return EPS_STEPS[-1]


def shown_front(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The thinned front of a :func:`load_front` report, cheapest MACs first."""
    shown = set(report["shown"])
    return sorted(
        (t for t in report["front"] if t["number"] in shown), key=lambda t: (t["macs"], t["params"])
    )


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

    Raises:
        StorageError: no such storage or study, or a study that ``search`` did not make
            (:func:`~widthsearch.search.study.load_search_study`).
    """
    study = study or load_search_study(study_name, storage_url)
    attrs = study.user_attrs
    base = {kind.key: attrs.get(kind.base_key) for kind in COST_KINDS.values()}
    full = [trial_summary(t, base) for t in front(study)]
    if eps is None:
        eps = choose_eps(full, rows)
    return {
        "study": study_name,
        "storage": storage_name(storage_url),
        "model": attrs[StudyAttr.MODEL],
        "input_size": attrs[StudyAttr.INPUT_SIZE],
        "timm_kwargs": attrs.get(StudyAttr.TIMM_KWARGS) or {},
        "sampler": attrs.get(StudyAttr.SAMPLER),
        "seed": attrs.get(StudyAttr.SEED),
        "objectives": attrs.get(StudyAttr.AXES, list(AXES)),
        "ranges": attrs.get(StudyAttr.RANGES) or {},
        "objective": attrs.get(StudyAttr.OBJECTIVE, DEFAULT_OBJECTIVE),
        **{kind.base_key: base[kind.key] for kind in COST_KINDS.values()},
        "latency_model": (attrs.get(StudyAttr.LATENCY_MODEL) or {}).get("note"),
        "base_widths": attrs.get(StudyAttr.BASE_WIDTHS),
        "fixed_groups": attrs.get(StudyAttr.FIXED_GROUPS, []),
        "trials": finished_count(study),
        "front": full,
        "eps": eps,
        "shown": [t["number"] for t in thin_front(full, eps)],
    }


__all__ = [
    "DEFAULT_ROWS",
    "EPS_STEPS",
    "choose_eps",
    "front",
    "load_front",
    "pareto_mask",
    "shown_front",
    "thin_front",
    "trial_summary",
    "widths_key",
]
