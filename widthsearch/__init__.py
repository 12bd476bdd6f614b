"""widthsearch: channel-width search for CNNs at initialization.

The public surface is re-exported here, lazily: ``import widthsearch`` loads nothing heavy, and
torch, timm and cvxpy load only when a model is analysed or a budget solved.

Example:
    >>> from widthsearch import Ratio, WidthSpace, reconfigure
    >>> space = WidthSpace.from_timm("resnet18", input_size=(3, 64, 64))
    >>> result = reconfigure(space, macs=0.5)  # doctest: +SKIP
    >>> result = reconfigure(space, params="4.2M", macs=Ratio(1))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from widthsearch._version import __version__

if TYPE_CHECKING:
    from widthsearch.errors import (
        InvalidWidthsError,
        UnknownModelError,
        UnsupportedModelError,
        WidthFileError,
        WidthSearchError,
    )
    from widthsearch.models.factory import create_model
    from widthsearch.models.widthfile import WidthFile, load_width_file
    from widthsearch.report.page import write_report
    from widthsearch.search.run import run_search
    from widthsearch.solve.budget import Ratio
    from widthsearch.solve.reconfigure import reconfigure
    from widthsearch.space.cost import Posynomial
    from widthsearch.space.width_space import Group, Layer, WidthSpace
    from widthsearch.verify.run import run_verify

_PUBLIC = {
    "Group": "widthsearch.space.width_space",
    "Layer": "widthsearch.space.width_space",
    "WidthSpace": "widthsearch.space.width_space",
    "Posynomial": "widthsearch.space.cost",
    "reconfigure": "widthsearch.solve.reconfigure",
    "Ratio": "widthsearch.solve.budget",
    "WidthFile": "widthsearch.models.widthfile",
    "load_width_file": "widthsearch.models.widthfile",
    "create_model": "widthsearch.models.factory",
    "run_search": "widthsearch.search.run",
    "run_verify": "widthsearch.verify.run",
    "write_report": "widthsearch.report.page",
    "InvalidWidthsError": "widthsearch.errors",
    "UnknownModelError": "widthsearch.errors",
    "UnsupportedModelError": "widthsearch.errors",
    "WidthFileError": "widthsearch.errors",
    "WidthSearchError": "widthsearch.errors",
}
"""Each public name and the module that defines it."""


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562), so the CLI starts fast."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'widthsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "Group",
    "InvalidWidthsError",
    "Layer",
    "Posynomial",
    "Ratio",
    "UnknownModelError",
    "UnsupportedModelError",
    "WidthFile",
    "WidthFileError",
    "WidthSearchError",
    "WidthSpace",
    "__version__",
    "create_model",
    "load_width_file",
    "reconfigure",
    "run_search",
    "run_verify",
    "write_report",
]
