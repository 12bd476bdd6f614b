"""``create_model``: a timm model at the widths of a width file, freshly initialized.

The model is built as :mod:`widthsearch.models.native` describes: timm's own builders for the
families they cover, the generic rebuild for the rest, then the family's init. timm kwargs given
here on top of the file's (``num_classes=10``, ``features_only=True``, ``drop_rate=0.2``) go to
timm: widths of fixed groups (classes, input channels) follow them, the searched widths stay.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch.errors import WidthSearchError
from widthsearch.models.native import build_spec
from widthsearch.models.widthfile import load_width_file
from widthsearch.space.width_space import create_timm_model

if TYPE_CHECKING:
    from torch import nn


def _is_width_file(name: str | os.PathLike) -> bool:
    return isinstance(name, os.PathLike) or str(name).endswith(".json") or Path(name).is_file()


def create_model(name_or_width_file: str | os.PathLike, **timm_kwargs: Any) -> nn.Module:
    """A timm model at the widths of a width file (or a plain timm model, given a name).

    Args:
        name_or_width_file: a width file (``reconfig -o``, ``front --trial N -o``) or a timm
            model name.
        **timm_kwargs: keyword arguments for ``timm.create_model`` (``num_classes``,
            ``features_only``, ...); ``pretrained`` is refused, since new widths have no
            weights.

    Returns:
        A freshly initialized model; with the file's own kwargs it has exactly the params and
        MACs the file records.

    Example:
        >>> model = create_model("widths.json", num_classes=10)

    Raises:
        WidthFileError: the file is unreadable or made for another width space.
        UnknownModelError: a name that is neither a width file nor a timm model.
    """
    if timm_kwargs.get("pretrained"):
        raise WidthSearchError(
            "widthsearch builds models at initialization: pretrained weights do not fit new "
            "widths (drop pretrained=True)"
        )
    timm_kwargs.pop("pretrained", None)
    if not _is_width_file(name_or_width_file):
        return create_timm_model(str(name_or_width_file), **timm_kwargs)
    from widthsearch.space import _portable

    wf = load_width_file(name_or_width_file)
    space = wf.space()
    return _portable.build(build_spec(space, wf.widths), **timm_kwargs)


__all__ = ["create_model"]
