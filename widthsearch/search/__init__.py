"""Search: Optuna studies over constraint mixes, their storage, and their Pareto fronts.

One module per concept: :mod:`~widthsearch.search.settings` (what a search explores),
:mod:`~widthsearch.search.attrs` (the study's attribute keys),
:mod:`~widthsearch.storage` (SQLite, journal files, PostgreSQL),
:mod:`~widthsearch.search.study` (a study's settings, and opening and loading it),
:mod:`~widthsearch.search.samplers` (the mixes trials take),
:mod:`~widthsearch.search.hardware` (latency and memory models),
:mod:`~widthsearch.search.objective` (one trial), :mod:`~widthsearch.search.front` (Pareto
fronts), :mod:`~widthsearch.search.run` (running a search) and
:mod:`~widthsearch.search.trial_file` (a trial as a width file).
"""

from widthsearch.errors import SearchInterrupted, StorageError
from widthsearch.search.attrs import SEARCH_STUDY, StudyAttr, TrialAttr
from widthsearch.search.front import (
    DEFAULT_ROWS,
    EPS_STEPS,
    choose_eps,
    front,
    load_front,
    pareto_mask,
    shown_front,
    thin_front,
    trial_summary,
    widths_key,
)
from widthsearch.search.hardware import HardwareModels, hardware_models, stored_latency
from widthsearch.search.objective import Infeasible, SearchTrial
from widthsearch.search.run import SearchResult, run_search
from widthsearch.search.samplers import SobolMixes, make_sampler, mix_distributions
from widthsearch.search.settings import (
    AXES,
    DEFAULT_SAMPLER,
    DIRECTIONS,
    SAMPLERS,
    Hardware,
    Ranges,
    SearchConfig,
)
from widthsearch.search.study import (
    check_settings,
    finished_count,
    load_search_study,
    open_study,
    setting_differences,
    study_settings,
)
from widthsearch.search.trial_file import save_trial_width_file, trial_result
from widthsearch.storage import (
    DEFAULT_STORAGE,
    VERIFICATION_MARK,
    find_study,
    is_verification,
    missing_study,
    open_storage,
    storage_name,
    study_names,
)

__all__ = [
    "AXES",
    "SearchTrial",
    "DEFAULT_ROWS",
    "DEFAULT_SAMPLER",
    "VERIFICATION_MARK",
    "DEFAULT_STORAGE",
    "DIRECTIONS",
    "EPS_STEPS",
    "Hardware",
    "HardwareModels",
    "Infeasible",
    "Ranges",
    "SAMPLERS",
    "SEARCH_STUDY",
    "SearchConfig",
    "SearchInterrupted",
    "SearchResult",
    "SobolMixes",
    "StorageError",
    "StudyAttr",
    "TrialAttr",
    "check_settings",
    "choose_eps",
    "find_study",
    "finished_count",
    "front",
    "hardware_models",
    "is_verification",
    "load_front",
    "load_search_study",
    "make_sampler",
    "missing_study",
    "mix_distributions",
    "open_storage",
    "open_study",
    "pareto_mask",
    "run_search",
    "save_trial_width_file",
    "setting_differences",
    "shown_front",
    "storage_name",
    "stored_latency",
    "study_names",
    "study_settings",
    "thin_front",
    "trial_result",
    "trial_summary",
    "widths_key",
]
