"""Exceptions with messages a user can act on.

Every error widthsearch raises on purpose derives from :class:`WidthSearchError`; the CLI turns
them into one line on stderr and exit status 2.
"""

from __future__ import annotations


class WidthSearchError(Exception):
    """Base class of widthsearch's own errors."""


class UnknownModelError(WidthSearchError, ValueError):
    """The model name is not a timm model."""


class UnsupportedModelError(WidthSearchError):
    """The model contains a module or op whose channel widths widthsearch cannot analyse."""


class InvalidWidthsError(WidthSearchError, ValueError):
    """A width vector does not fit the width space (length, fixed groups, divisibility)."""


class OutputPathError(WidthSearchError, OSError):
    """A file widthsearch was asked to write cannot be written there."""


class RealizationError(WidthSearchError):
    """A realized model does not count what its width space predicts: a widthsearch bug."""


class InfeasibleBudgetError(WidthSearchError, ValueError):
    """A budget is below the smallest cost the width bounds allow."""


class BoundsError(InfeasibleBudgetError):
    """Width bounds (min, max, divisor) that no width vector meets, or that leave the budgets
    nothing to decide. An :class:`InfeasibleBudgetError`, so a search prunes such a mix as it
    prunes an infeasible budget."""


class SolverError(WidthSearchError):
    """The convex solver did not reach an optimum."""


class RoundingError(WidthSearchError):
    """No width vector on the grid holds the budgets."""


class DeviceError(WidthSearchError):
    """A device that is not there, or settings it cannot run."""


class ProfileError(WidthSearchError, ValueError):
    """A latency profile that cannot be read or does not fit the device or the model."""


class WidthFileError(WidthSearchError, ValueError):
    """A width file that cannot be read or does not fit its model."""


class StorageError(WidthSearchError):
    """A storage URL that cannot be opened, or a study that does not fit the command."""


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search after its running trials finished; the message says what is
    stored. A :class:`KeyboardInterrupt`, so code that catches that still does."""


class StudyConfigError(WidthSearchError, ValueError):
    """A study file or option that cannot be used."""


class DataError(WidthSearchError):
    """A data spec that cannot be read: unknown kind, missing, empty or corrupt files."""


class HeadError(WidthSearchError):
    """A head policy that cannot be applied to a model."""


class StemError(WidthSearchError):
    """A stem policy that cannot be applied to a model."""


class QueueError(WidthSearchError):
    """A verification study that cannot be used as asked."""


class TruthTableError(WidthSearchError, ValueError):
    """A ``--truth`` file that is not a ground-truth table (code -> accuracy)."""


class VerifyError(WidthSearchError):
    """A verification that cannot run as asked (no candidates, bad results file, ...)."""
