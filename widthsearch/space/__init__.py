"""Parse: a model's channel groups, the layers over them, their exact costs, and realization
at new widths.

``_trace`` (the channel tracer), ``_optrace``, ``realize`` and ``_portable`` import torch at
the top, so this face leaves them out: import them by module where they are needed.
"""

from widthsearch.space.cost import (
    Monomial,
    Posynomial,
    monomial,
)
from widthsearch.space.width_space import (
    Group,
    Layer,
    LayerKind,
    SizeAttr,
    Widths,
    WidthSpace,
    create_timm_model,
)

__all__ = [
    "Group",
    "Layer",
    "LayerKind",
    "Monomial",
    "Posynomial",
    "SizeAttr",
    "WidthSpace",
    "Widths",
    "create_timm_model",
    "monomial",
]
