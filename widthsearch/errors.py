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
