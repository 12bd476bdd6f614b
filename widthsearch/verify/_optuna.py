"""The one place verify/ reaches past Optuna's public API, into a study's storage.

The queue needs what :class:`optuna.Study` does not offer: every trial of a study without a
deep copy and failed ones included (the study class of
:func:`widthsearch.verify.queue.open_verification` hides those from ``get_trials`` on purpose,
for the pruner), the trials of *other* studies in the same storage, the values a running trial
has stored, and a running trial's state changed from outside it. Those calls take the storage
and the ids Optuna keeps private (``Study._storage``, ``Study._study_id``,
``FrozenStudy._study_id``, ``Trial._trial_id``, ``FrozenTrial._trial_id``); they are all here,
so an Optuna release that renames one is fixed in this file.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.study._frozen import FrozenStudy
    from optuna.trial import FrozenTrial, TrialState


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage ``study`` lives in (where its verification study goes too)."""
    return study._storage


def trials(study: optuna.Study, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
    """The trials of ``study`` in ``states`` (None: all, failed ones too), not copied."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False, states=states)


def studies(study: optuna.Study) -> list[FrozenStudy]:
    """Every study in ``study``'s storage."""
    return study._storage.get_all_studies()


def trials_of(
    study: optuna.Study, other: FrozenStudy, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """The trials of ``other``, a study in ``study``'s storage (:func:`studies`), not copied."""
    return study._storage.get_all_trials(other._study_id, deepcopy=False, states=states)


def stored(trial: optuna.Trial) -> FrozenTrial:
    """A running trial as its storage holds it (with the epochs it has reported so far)."""
    return trial.study._storage.get_trial(trial._trial_id)


def reload(study: optuna.Study, trial: FrozenTrial) -> FrozenTrial:
    """``trial`` of ``study`` as its storage holds it now."""
    return study._storage.get_trial(trial._trial_id)


def fail(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Set a running ``trial`` of ``study`` to FAIL; False when another process changed its
    state first.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has finished.
    """
    from optuna.trial import TrialState

    return study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
