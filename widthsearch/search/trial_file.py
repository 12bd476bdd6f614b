"""One search trial as a width file: the path from a front to a model.

A search trial stores its mix (budget ratios, bounds, divisor, mode) and its rounded widths.
:func:`trial_result` turns them back into the :class:`~widthsearch.solve.Reconfiguration` that
``reconfig`` would have printed for the same budgets: exactly the trial's widths (not a new
solve, which could round otherwise), the absolute budgets the trial solved (as
:func:`~widthsearch.search.objective.mix_budgets` computed them), and the costs counted anew on
the width space. :func:`save_trial_width_file` writes it as a width file, which ``export``,
``verify`` and :func:`~widthsearch.models.create_model` take like one from ``reconfig -o``.

Example:
    >>> from widthsearch.search.trial_file import save_trial_width_file
    >>> save_trial_width_file("w.json", "resnet18", "sqlite:///s.db", 12)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from widthsearch.errors import StorageError
from widthsearch.models.widthfile import save_width_file
from widthsearch.search.attrs import StudyAttr, TrialAttr
from widthsearch.search.hardware import stored_models
from widthsearch.search.objective import full_mix, mix_budgets, trial_problem
from widthsearch.search.study import load_search_study
from widthsearch.solve import Reconfiguration
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, score
from widthsearch.solve.reconfigure import result_of
from widthsearch.solve.solver import Solution
from widthsearch.space import WidthSpace
from widthsearch.storage import storage_name

if TYPE_CHECKING:
    import optuna


def _trial(study: optuna.Study, study_name: str, storage_url: str | None, number: int):
    """The complete trial ``number`` with widths, or a one-line reason why there is none."""
    import optuna

    where = f"study '{study_name}' in {storage_name(storage_url)}"
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    if found is None:
        last = max((t.number for t in trials), default=None)
        have = "no trials" if last is None else f"trials 0 to {last}"
        raise StorageError(f"{where} has no trial {number} ({have}); `front` lists them")
    a = found.user_attrs
    if found.state != optuna.trial.TrialState.COMPLETE or TrialAttr.WIDTHS not in a:
        why = a.get(TrialAttr.INFEASIBLE) or a.get(TrialAttr.SOLVER_FAILED)
        raise StorageError(
            f"trial {number} of {where} has no widths ({found.state.name.lower()}"
            + (f": {why}" if why else "")
            + "); pick a trial from `front`"
        )
    return found


def trial_result(
    study_name: str,
    storage_url: str | None,
    number: int,
    *,
    study: optuna.Study | None = None,
) -> tuple[Reconfiguration, WidthSpace]:
    """Trial ``number`` of a stored search study as a reconfiguration, with its width space.

    The widths are the trial's own; params, MACs, log SynExp gain and (where the study has
    them) predicted latency and activation memory are counted on the width space, and equal
    what the trial recorded. ``multipliers`` are the widths over the base (the trial keeps no
    continuous optimum), so the recorded rounding loss is 0. The result carries the trial's
    problem: its mode, bounds and divisor, and the study's grid and objective, so that its
    width file gives ``verify`` the controls ``verify STUDY`` draws.

    Raises:
        StorageError: no such storage, study or trial; a trial without widths (pruned, say,
            with its reason); or a width space that timm now parses otherwise than the study.
    """
    study = study or load_search_study(study_name, storage_url)
    trial = _trial(study, study_name, storage_url, number)
    attrs = study.user_attrs
    kwargs = dict(attrs.get(StudyAttr.TIMM_KWARGS) or {})
    space = WidthSpace.from_ref(
        attrs[StudyAttr.MODEL], input_size=tuple(attrs[StudyAttr.INPUT_SIZE]), **kwargs
    )
    stored_base = attrs.get(StudyAttr.BASE_WIDTHS)
    if stored_base is not None and list(space.base_widths) != list(stored_base):
        raise StorageError(
            f"the installed timm parses {space.model} into other channel groups than study "
            f"'{study_name}' holds; search again with this timm"
        )
    widths = tuple(int(w) for w in trial.user_attrs[TrialAttr.WIDTHS])
    models = stored_models(attrs, space)
    base = {n: m(space.base_widths) for n, m in models.items()}
    budgets = mix_budgets(full_mix(trial.params), space, base=base)
    problem = trial_problem(attrs, trial.params, budgets)
    value = None
    if problem.objective != DEFAULT_OBJECTIVE:
        value = score(space, problem.objective, widths)
    solution = Solution(
        widths=widths,
        problem=problem,
        strategy="best",
        method="search trial",
        value=value,
        decisions=tuple(trial.user_attrs.get(TrialAttr.DECISIONS) or ()),
        bounds=(problem.min_width, problem.max_width or 1.0),
    )
    stored_model = attrs.get(StudyAttr.LATENCY_MODEL) or {}
    note = stored_model.get("note") or ""
    result = result_of(space, solution, models, latency_note=note)
    batch = (stored_model.get("device") or {}).get("batch_size")
    result = replace(result, batch_size=batch or attrs.get(StudyAttr.MEMORY_BATCH_SIZE) or 1)
    return result, space


def save_trial_width_file(
    path: str | os.PathLike,
    study_name: str,
    storage_url: str | None,
    number: int,
    *,
    study: optuna.Study | None = None,
) -> Reconfiguration:
    """Write trial ``number``'s width file (see :func:`trial_result`) and return its result.

    Raises:
        StorageError: as :func:`trial_result`.
    """
    result, space = trial_result(study_name, storage_url, number, study=study)
    save_width_file(path, result, space)
    return result


__all__ = ["save_trial_width_file", "trial_result"]
