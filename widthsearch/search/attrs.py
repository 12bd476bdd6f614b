"""The user attribute keys of a search study and of its trials, each named once.

A search study keeps what defines it, and what fronts and reports need without timm or a
profile, as Optuna user attributes of the study (:class:`StudyAttr`); each trial keeps its
widths and what became of its mix as user attributes of the trial (:class:`TrialAttr`). Every
module that reads or writes one names it here, so a key is spelled in one place. The stored
strings are part of the storage format: a study written by an earlier version is read with
the same keys.

Example:
    >>> from widthsearch.search.attrs import SEARCH_STUDY, StudyAttr, TrialAttr
    >>> StudyAttr.MARK, SEARCH_STUDY, TrialAttr.WIDTHS
    ('widthsearch', 'study', 'widths')
"""

from __future__ import annotations

from typing import Final

SEARCH_STUDY: Final = "study"
"""The value of :attr:`StudyAttr.MARK` on a study ``search`` made."""


class StudyAttr:
    """Keys of a search study's user attributes."""

    MARK: Final = "widthsearch"
    """Which widthsearch command made the study (:data:`SEARCH_STUDY` for ``search``); set
    last, so a study without it was cut off before its settings were stored."""

    # what defines the study: a re-run must match these (see widthsearch.search.study)
    MODEL: Final = "model"
    INPUT_SIZE: Final = "input_size"
    TIMM_KWARGS: Final = "timm_kwargs"
    RANGES: Final = "ranges"
    SAMPLER: Final = "sampler"
    SEED: Final = "seed"
    AXES: Final = "objectives"
    """The study's Pareto axes, by name (the stored key predates the objective registry)."""
    OBJECTIVE: Final = "objective"
    """The objective every trial maximizes (absent on studies made before it was recorded:
    ``synexp``)."""
    TIME_LIMIT: Final = "time_limit"
    """Seconds each trial's lattice search may take (absent: the default)."""
    GRID: Final = "grid"
    """The width grid and ties (:meth:`widthsearch.space.choices.GridSpec.to_dict`); absent
    on studies on the divisor grid."""

    # the base model, so that fronts show ratios without building the width space
    BASE_PARAMS: Final = "base_params"
    BASE_MACS: Final = "base_macs"
    BASE_WIDTHS: Final = "base_widths"
    FIXED_GROUPS: Final = "fixed_groups"

    # the study's hardware models (see widthsearch.search.hardware)
    BASE_LATENCY_MS: Final = "base_latency_ms"
    LATENCY_MODEL: Final = "latency_model"
    """The latency posynomial, its device and its note, so that fronts, reports and
    verification show predicted latency without profiling again."""
    BASE_MEMORY_BYTES: Final = "base_memory_bytes"
    MEMORY_BATCH_SIZE: Final = "memory_batch_size"
    COST_SETTINGS: Final = "cost_settings"
    """The :class:`~widthsearch.solve.costs.CostSettings` the study's cost models were built
    with (the base value of each kind is ``base_{key}``, :attr:`CostKind.base_key
    <widthsearch.solve.costs.CostKind.base_key>`)."""


class TrialAttr:
    """Keys of a search trial's user attributes."""

    WIDTHS: Final = "widths"
    """The rounded widths of a feasible trial."""
    DUPLICATE_OF: Final = "duplicate_of"
    """The first trial with the same widths (a duplicate stays out of the front)."""
    MEMORY_BYTES: Final = "memory_bytes"
    """Training activation memory of the widths, where the study budgets it."""
    INFEASIBLE: Final = "infeasible"
    """Why a pruned trial's budgets are out of reach of its bounds."""
    SOLVER_FAILED: Final = "solver_failed"
    """Why the solver failed on a pruned trial's mix."""
    LOG_SYNEXP: Final = "log_synexp"
    """log SynExp of the widths, where the study's objective is another (its value is the
    trial's first value)."""
    DECISIONS: Final = "decisions"
    """What the solve decided that the user should know (see
    :attr:`widthsearch.solve.solver.Solution.decisions`), where it decided anything."""
    GAP: Final = "gap"
    """The certified gap of a lattice search that reached its time limit."""


__all__ = ["SEARCH_STUDY", "StudyAttr", "TrialAttr"]
