"""widthsearch: channel-width search for timm CNNs at initialization.

The public surface is re-exported here; torch and timm load only when a model is analysed.
"""

from .cost import Posynomial
from .errors import InvalidWidthsError, UnknownModelError, UnsupportedModelError, WidthSearchError
from .factory import create_model
from .space import Group, Layer, WidthSpace
from .widthfile import WidthFile, WidthFileError, load_width_file

__version__ = "0.1.0"

__all__ = [
    "Group",
    "WidthFile",
    "WidthFileError",
    "create_model",
    "load_width_file",
    "InvalidWidthsError",
    "Layer",
    "Posynomial",
    "UnknownModelError",
    "UnsupportedModelError",
    "WidthSearchError",
    "WidthSpace",
]
