"""Width files: the JSON that carries new widths from ``reconfig`` to models and training code.

A width file names the model, the timm version and kwargs it was made with, the input size, the
fingerprint of its width space, the base and new width of every channel group, the budgets and
mode, and the predicted params, MACs and log SynExp gain. ``format_version`` is bumped on any
incompatible change.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import write_atomic
from .errors import WidthSearchError

if TYPE_CHECKING:
    from .reconfig import Reconfiguration
    from .space import WidthSpace

FORMAT_VERSION = 1


class WidthFileError(WidthSearchError, ValueError):
    """A width file that cannot be read or does not fit its model."""


@dataclass(frozen=True)
class WidthFile:
    """The content of a width file that matters for building the model."""

    model: str
    input_size: tuple[int, ...]
    base_widths: tuple[int, ...]
    widths: tuple[int, ...]
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    timm_version: str = ""
    fingerprint: str = ""
    """:attr:`WidthSpace.fingerprint` of the space the widths were made for."""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Everything in the file, as read."""

    def space(self) -> WidthSpace:
        """The width space of the file's model, analysed anew and checked against the file.

        Raises:
            WidthFileError: the installed timm parses the model into another width space.
        """
        from .space import WidthSpace

        kwargs = dict(self.timm_kwargs)
        space = WidthSpace.from_timm(self.model, input_size=self.input_size, **kwargs)
        self.check_space(space)
        return space

    def check_space(self, space: WidthSpace) -> None:
        """Fail unless ``space`` is the width space these widths were made for.

        A file written with another timm version is accepted, with a warning, when the width
        space is unchanged; otherwise its widths could land on other channels, so it is refused.
        """
        import timm

        if space.model != self.model:
            raise WidthFileError(f"width file is for '{self.model}', not '{space.model}'")
        same = tuple(space.base_widths) == tuple(self.base_widths) and (
            not self.fingerprint or self.fingerprint == space.fingerprint
        )
        other_timm = bool(self.timm_version) and self.timm_version != timm.__version__
        if not same:
            why = (
                f"timm {timm.__version__} parses it differently from timm {self.timm_version}"
                if other_timm
                else "its groups or layers differ"
            )
            raise WidthFileError(
                f"the width space of '{self.model}' does not match the width file ({why}); "
                "run reconfig again"
            )
        if other_timm:
            warnings.warn(
                f"width file made with timm {self.timm_version}, running timm {timm.__version__}; "
                "the width space is unchanged, so the widths apply",
                stacklevel=2,
            )


def width_file_dict(result: Reconfiguration, space: WidthSpace) -> dict[str, Any]:
    """The JSON object of a width file for ``result``."""
    import timm

    from . import __version__

    info = result.to_dict()
    return {
        "format_version": FORMAT_VERSION,
        "widthsearch_version": __version__,
        "model": space.model,
        "timm_version": timm.__version__,
        "timm_kwargs": dict(space.timm_kwargs),
        "input_size": list(space.input_size),
        "space_fingerprint": space.fingerprint,
        "mode": result.mode,
        "budgets": info["budgets"],
        "min_width": result.min_width,
        "max_width": result.max_width,
        "divisor": result.divisor,
        "base_widths": list(result.base_widths),
        "widths": list(result.widths),
        "groups": info["groups"],
        "base_params": result.base_params,
        "base_macs": result.base_macs,
        "params": result.params,
        "macs": result.macs,
        "log_synexp_gain": result.log_synexp_gain,
    }


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write JSON atomically: a reader never sees half a file, a failure leaves none."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def save_width_file(path: str | os.PathLike, result: Reconfiguration, space: WidthSpace) -> None:
    """Write the width file of ``result``."""
    write_json(path, width_file_dict(result, space))


def load_width_file(path: str | os.PathLike, *, model: str | None = None) -> WidthFile:
    """Read and check a width file (for ``model``, when given).

    Raises:
        WidthFileError: the file is missing, not JSON, of another format version, for another
            model, or its widths are not positive integers, one per channel group.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise WidthFileError(f"no width file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WidthFileError(f"{path} is not a JSON width file ({exc})") from None
    if not isinstance(data, dict):
        raise WidthFileError(f"{path} is not a JSON width file (top level is not an object)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise WidthFileError(
            f"{path} has format_version {version!r}; this widthsearch reads {FORMAT_VERSION}"
        )
    try:
        name = str(data["model"])
        base = _ints(path, data["base_widths"], "base_widths")
        widths = _ints(path, data["widths"], "widths")
        input_size = tuple(_ints(path, data["input_size"], "input_size"))
    except KeyError as exc:
        raise WidthFileError(f"{path} lacks the field {exc}") from None
    if model is not None and name != model:
        raise WidthFileError(f"{path} holds widths for '{name}', not '{model}'")
    if len(widths) != len(base):
        raise WidthFileError(
            f"{path}: {len(widths)} widths for the {len(base)} channel groups of {name}"
        )
    kwargs = data.get("timm_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise WidthFileError(f"{path}: 'timm_kwargs' must be an object")
    return WidthFile(
        model=name,
        input_size=input_size,
        base_widths=tuple(base),
        widths=tuple(widths),
        timm_kwargs=kwargs,
        timm_version=str(data.get("timm_version", "")),
        fingerprint=str(data.get("space_fingerprint", "")),
        data=data,
    )


def _ints(path: Any, values: Any, name: str) -> list[int]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise WidthFileError(f"{path}: '{name}' must be a list of positive integers")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise WidthFileError(
                f"{path}: '{name}' entry {i} is {v!r}; widths must be positive integers"
            )
    return list(values)


__all__ = [
    "FORMAT_VERSION",
    "WidthFile",
    "WidthFileError",
    "load_width_file",
    "save_width_file",
    "width_file_dict",
    "write_json",
]
