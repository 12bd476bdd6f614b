"""widthsearch: channel-width search for timm CNNs at initialization.

The public surface is re-exported here; torch and timm load only when a model is analysed.
"""

from .cost import Posynomial
from .errors import InvalidWidthsError, UnknownModelError, UnsupportedModelError, WidthSearchError
from .space import Group, Layer, WidthSpace

__version__ = "0.1.0"

__all__ = [
    "Group",
    "InvalidWidthsError",
    "Layer",
    "Posynomial",
    "UnknownModelError",
    "UnsupportedModelError",
    "WidthSearchError",
    "WidthSpace",
]
