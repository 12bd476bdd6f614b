"""Exceptions with messages a user can act on.

Every error widthsearch raises on purpose derives from :class:`WidthSearchError`; the CLI turns
them into one line on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Mapping

PYTHON_NAMES: Mapping[str, str] = {
    "budget": "a budget: params=, macs=, latency= or memory= (a count such as 4_200_000 or "
    "'4.2M', or a ratio of the base such as 0.5, '0.5' or Ratio(0.5))",
    "replace": "replace=True",
    "output": "another folder",
    "output_key": "output=KEY (VerifySettings, or [verify] output in a study file)",
}
"""How option placeholders read in Python (any other ``{name}`` reads as ``name``, the keyword
argument); the CLI has its own table of flags."""


class _Names(dict):
    def __missing__(self, key: str) -> str:
        return key


class WidthSearchError(Exception):
    """Base class of widthsearch's own errors.

    A message that names what to change is written once, with placeholders for the options:
    ``WidthSearchError(options="raise the budget or lower {min_width}={value}")``. In Python it
    reads ``lower min_width=0.2`` (the keyword argument); the CLI prints :meth:`worded` with
    its flags, ``lower --min-width=0.2``.
    """

    def __init__(self, *args: object, options: str | None = None) -> None:
        if options is not None and not args:
            args = (options.format_map(_Names(PYTHON_NAMES)),)
        super().__init__(*args)
        self.options = options

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with ``names`` (option -> how a caller spells it) for its options."""
        if self.options is None:
            return str(self)
        return self.options.format_map(_Names({**PYTHON_NAMES, **names}))


class UnknownModelError(WidthSearchError, ValueError):
    """The model name is not a timm model."""


class ModelRefError(WidthSearchError, ValueError):
    """A model reference (``FILE.py:NAME``, ``package.module:NAME``) or ``--model-kwargs``
    that does not lead to a factory: no such file or module, no such name in it, a file that
    fails to import, kwargs that are not a JSON object."""


class ModelFactoryError(WidthSearchError):
    """A model factory that raised, or returned something other than a torch ``nn.Module``."""


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


class GridError(BoundsError):
    """A width grid (``--choices``) or tie (``--tie``) that cannot be used: unreadable text, a
    glob that matches no group, a width a group cannot take, tied groups with no common width.
    A :class:`BoundsError`, so a search prunes such a mix as it prunes other empty bounds."""


class ReportScaleError(WidthSearchError):
    """A report would replace one of a larger scale (more trials, epochs, seeds or a full run
    where it is a quick check) without being told to."""


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


class VerifyInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a verification; the message says which runs are stored and how to resume.
    A :class:`KeyboardInterrupt`, so code that catches that still does."""


class WidthSearchWarning(UserWarning):
    """Something a user should know that does not stop the work (a width file edited by hand,
    another timm version); the CLI prints it as one ``widthsearch: warning:`` line."""


class StudyConfigError(WidthSearchError, ValueError):
    """A study file or option that cannot be used."""


class DataError(WidthSearchError):
    """A data spec that cannot be read: unknown kind, missing, empty or corrupt files."""


class ModelOutputError(WidthSearchError, ValueError):
    """A model output training cannot read: no ``[batch, classes]`` tensor under the rule of
    :mod:`widthsearch.train.output`, or an output key it does not have."""


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
