"""The search study in its storage: what defines it, and creating, checking and loading it.

A study keeps the settings it was made with (:func:`study_settings`) as user attributes, and
the mark ``widthsearch = "study"`` (:attr:`~widthsearch.search.attrs.StudyAttr.MARK`) last of
all. A re-run with other settings is refused before any trial runs, the study left as it is
(:func:`check_settings`); the commands that only read load a study without creating anything
(:func:`load_search_study`).
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

from widthsearch.errors import StorageError
from widthsearch.search.attrs import SEARCH_STUDY, StudyAttr
from widthsearch.search.settings import AXES, DEFAULT_SAMPLER, DIRECTIONS, SearchConfig
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE
from widthsearch.storage import (
    VERIFICATION_MARK,
    find_study,
    is_verification,
    missing_study,
    open_storage,
    storage_name,
)

if TYPE_CHECKING:
    import optuna

    from widthsearch.search.hardware import HardwareModels
    from widthsearch.space import WidthSpace


def _json(value: Any) -> Any:
    """``value`` as the storage gives it back (JSON: tuples become lists)."""
    return json.loads(json.dumps(value))


def study_settings(config: SearchConfig) -> dict[str, Any]:
    """What defines a study: a re-run must match these (None for sampler/seed: any)."""
    return {
        StudyAttr.MODEL: config.model,
        StudyAttr.INPUT_SIZE: _json(list(config.input_size)),
        StudyAttr.TIMM_KWARGS: _json(dict(config.timm_kwargs)),
        StudyAttr.RANGES: _json(config.ranges.to_dict()),
        StudyAttr.SAMPLER: config.sampler,
        StudyAttr.SEED: config.seed,
        StudyAttr.AXES: list(config.axes),
        StudyAttr.OBJECTIVE: config.objective,
        **({} if config.grid.empty else {StudyAttr.GRID: _json(config.grid.to_dict())}),
    }


def setting_differences(config: SearchConfig, attrs: dict[str, Any]) -> list[str]:
    """Each setting of ``config`` that differs from a stored study's, as 'key stored (not
    given)'. Sampler and seed count only when ``config`` sets them and the study recorded them.
    """
    wanted = study_settings(config)
    diffs = []
    for key in (StudyAttr.MODEL, StudyAttr.INPUT_SIZE, StudyAttr.TIMM_KWARGS):
        if attrs.get(key, {} if key == StudyAttr.TIMM_KWARGS else None) != wanted[key]:
            diffs.append(f"{key} {_show(attrs.get(key))} (not {_show(wanted[key])})")
    stored_ranges = attrs.get(StudyAttr.RANGES) or {}
    for key, value in wanted[StudyAttr.RANGES].items():
        if stored_ranges.get(key) != value:
            diffs.append(f"ranges.{key} {_show(stored_ranges.get(key))} (not {_show(value)})")
    for key in (StudyAttr.SAMPLER, StudyAttr.SEED):
        if wanted[key] is not None and key in attrs and attrs[key] != wanted[key]:
            diffs.append(f"{key} {_show(attrs[key])} (not {_show(wanted[key])})")
    if attrs.get(StudyAttr.GRID) != wanted.get(StudyAttr.GRID):
        diffs.append(
            f"grid {_show(attrs.get(StudyAttr.GRID))} (not {_show(wanted.get(StudyAttr.GRID))})"
        )
    objective = attrs.get(StudyAttr.OBJECTIVE, DEFAULT_OBJECTIVE)
    if objective != wanted[StudyAttr.OBJECTIVE]:
        diffs.append(f"objective {objective} (not {wanted[StudyAttr.OBJECTIVE]})")
    stored = list(attrs.get(StudyAttr.AXES, AXES))
    if stored != wanted[StudyAttr.AXES] and objective == wanted[StudyAttr.OBJECTIVE]:
        diffs.append(f"objectives {_show(stored)} (not {_show(wanted[StudyAttr.AXES])})")
    return diffs


def _show(value: Any) -> str:
    if value is None or value is False:
        return "false" if value is False else "none"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def check_settings(config: SearchConfig, study: optuna.Study, url: str | None) -> None:
    """Refuse to run ``config`` on a stored study made with other settings (before any trial).

    Raises:
        StorageError: one line naming what differs and how to go on.
    """
    attrs = study.user_attrs
    if attrs.get(StudyAttr.MARK) != SEARCH_STUDY:
        raise StorageError(
            f"study '{config.name}' in {storage_name(url)} was not made by widthsearch search; "
            "use another --study name"
        )
    diffs = setting_differences(config, attrs)
    if diffs:
        raise StorageError(
            f"study '{config.name}' in {storage_name(url)} holds {attrs.get(StudyAttr.MODEL)} "
            f"with other settings: {'; '.join(diffs)}. It is left as it is: re-run with its "
            "settings to continue it, or give a new --study name"
        )


def open_study(
    config: SearchConfig,
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
    if study is not None and not (create and unfinished(study)):
        check_settings(config, study, url)
        return study
    if study is None:
        if not create:
            raise missing_study(config.name, storage, url)
        directions = list(DIRECTIONS) + ["minimize"] * (len(config.axes) - len(DIRECTIONS))
        study = optuna.create_study(study_name=config.name, storage=storage, directions=directions)
    # a new study, or one killed between its creation and its settings (it has no trials)
    sampler = config.sampler or DEFAULT_SAMPLER
    seed = config.seed
    if seed is None and sampler == "qmc":  # all workers and every resume share one sequence
        seed = random.SystemRandom().randrange(2**31)
    settings = {**study_settings(config), StudyAttr.SAMPLER: sampler, StudyAttr.SEED: seed}
    settings[StudyAttr.TIME_LIMIT] = config.time_limit
    if space is not None:
        settings[StudyAttr.BASE_PARAMS] = space.params()
        settings[StudyAttr.BASE_MACS] = space.macs()
        settings[StudyAttr.BASE_WIDTHS] = list(space.base_widths)
        settings[StudyAttr.FIXED_GROUPS] = [g.id for g in space.groups if g.fixed]
        if hardware is not None:
            settings.update(hardware.attrs(space))
    for key, value in {**settings, StudyAttr.MARK: SEARCH_STUDY}.items():  # the mark comes last
        study.set_user_attr(key, value)
    return study


def unfinished(study: optuna.Study) -> bool:
    """A study without its widthsearch settings and without trials."""
    return StudyAttr.MARK not in study.user_attrs and not study.get_trials(deepcopy=False)


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
    if study.user_attrs.get(StudyAttr.MARK) != SEARCH_STUDY:
        if is_verification(study_name):
            owner = study_name.split(VERIFICATION_MARK, 1)[0]
            raise StorageError(
                f"study '{study_name}' is verify's record of the training runs of '{owner}', "
                f"not a search; give '{owner}'"
            )
        raise StorageError(
            f"study '{study_name}' in {storage_name(storage_url)} was not made by widthsearch "
            "search"
        )
    return study


def finished_count(study: optuna.Study) -> int:
    """Complete and pruned trials of ``study`` (a failed one counts nowhere)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


__all__ = [
    "check_settings",
    "finished_count",
    "load_search_study",
    "open_study",
    "setting_differences",
    "study_settings",
    "unfinished",
]
