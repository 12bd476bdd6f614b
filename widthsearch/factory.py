"""``create_model``: a timm model at the widths of a width file, freshly initialized.

The generic path of design.md section 4: build the timm model, rebuild its layers at the file's
widths, re-run the family's init (:meth:`WidthSpace.realize`). timm kwargs given here on top of
the file's (``num_classes=10``, ``drop_rate=0.2``) are honoured when they leave the free channel
groups as they were: the widths carry over group by group, and fixed groups (classes) follow
the kwargs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import WidthSearchError
from .widthfile import WidthFileError, load_width_file

if TYPE_CHECKING:
    from torch import nn

    from .space import WidthSpace


def _is_width_file(name: str | os.PathLike) -> bool:
    return isinstance(name, os.PathLike) or str(name).endswith(".json") or Path(name).is_file()


def create_model(name_or_width_file: str | os.PathLike, **timm_kwargs: Any) -> nn.Module:
    """A timm model at the widths of a width file (or a plain timm model, given a name).

    Example:
        >>> model = create_model("widths.json", num_classes=10)

    Raises:
        WidthFileError: the file is unreadable, made for another width space, or the kwargs
            change the model's channel structure.
        UnknownModelError: a name that is neither a width file nor a timm model.
    """
    if timm_kwargs.get("pretrained"):
        raise WidthSearchError(
            "widthsearch builds models at initialization: pretrained weights do not fit new "
            "widths (drop pretrained=True)"
        )
    timm_kwargs.pop("pretrained", None)
    if not _is_width_file(name_or_width_file):
        from .space import create_timm_model

        return create_timm_model(str(name_or_width_file), **timm_kwargs)
    wf = load_width_file(name_or_width_file)
    space = wf.space()
    kwargs = {**wf.timm_kwargs, **timm_kwargs}
    if kwargs == dict(wf.timm_kwargs):
        return space.realize(wf.widths)
    from .space import WidthSpace

    target = WidthSpace.from_timm(wf.model, input_size=wf.input_size, **kwargs)
    return target.realize(carry_widths(space, target, wf.widths, kwargs))


def carry_widths(
    source: WidthSpace, target: WidthSpace, widths: tuple[int, ...], kwargs: dict[str, Any]
) -> tuple[int, ...]:
    """``widths`` of ``source`` mapped onto ``target`` whose free groups are the same."""
    same = len(source.groups) == len(target.groups) and all(
        (a.producer, a.fixed) == (b.producer, b.fixed) and (a.fixed or a.width == b.width)
        for a, b in zip(source.groups, target.groups, strict=True)
    )
    if not same:
        raise WidthFileError(
            f"timm kwargs {kwargs} change the channel structure of '{source.model}', so the "
            "file's widths do not carry over; run reconfig with these kwargs instead"
        )
    return tuple(b.width if b.fixed else w for b, w in zip(target.groups, widths, strict=True))


__all__ = ["carry_widths", "create_model"]
