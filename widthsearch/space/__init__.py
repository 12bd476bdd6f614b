"""Parse: a model's channel groups, the layers over them, their exact costs, and realization
at new widths.

The channel tracer (``_trace``, with its parts ``_nodes``, ``_records``, ``_ops``, ``_shapes``,
``_tracer_base``, ``_layer_rules`` and ``_channel_rules``), ``_optrace``, ``realize`` and
``_portable`` import torch at the top (``_nodes`` and ``_records`` do not, but belong to the
tracer), so this face leaves them out: import them by module where they are needed. The light
modules: ``cost`` (posynomials), ``grid`` and ``choices`` (width grids and ties), ``groups``
(groups, layers, split-size attributes), ``structure`` (a trace to groups and layers),
``source`` (where the model comes from), ``layer_table`` and ``width_space``.
"""

from widthsearch.space.choices import Choices, GridSpec, WidthLattice, parse_tie
from widthsearch.space.cost import (
    Monomial,
    Posynomial,
    monomial,
)
from widthsearch.space.width_space import (
    Group,
    Layer,
    LayerKind,
    ModelRef,
    SizeAttr,
    Widths,
    WidthSpace,
    create_timm_model,
)

__all__ = [
    "Choices",
    "GridSpec",
    "WidthLattice",
    "parse_tie",
    "Group",
    "Layer",
    "LayerKind",
    "ModelRef",
    "Monomial",
    "Posynomial",
    "SizeAttr",
    "WidthSpace",
    "Widths",
    "create_timm_model",
    "monomial",
]
