"""Width files: the JSON that carries new widths from ``reconfig`` to models and training code.

A width file names the model, the timm version and kwargs it was made with, the input size, the
fingerprint of its width space, the budgets and mode, one entry per channel group
(``groups``: id, producer, base and new width), and the predicted params, MACs and log SynExp
gain. ``format_version`` is bumped on any incompatible change; older versions stay readable.

**Your own models.** For a model reference ``path/to/net.py:NAME`` or ``package.module:NAME``
(:class:`~widthsearch.space.source.ModelRef`), ``model`` is the reference, ``model_kwargs`` the
factory's keyword arguments (instead of ``timm_kwargs``) and ``model_sha256`` the sha256 of the
factory's file. Loading the file with a changed source file warns; where the change moved the
width space (other groups or layers), the widths could land on other channels, so it is refused,
as for a timm version that parses a timm model differently.

**One source of truth.** The widths are stored once, in ``groups``, where a reader sees which
layer each width belongs to, so editing a group's ``width`` there is how to change it. Version 1
files also held a bare ``widths`` list, which was the copy that counted; such a file is read, but
refused when its two copies disagree (an edit of the readable copy would otherwise do nothing).
The recorded params and MACs are predictions for the widths as written: when a hand edit leaves
them stale, loading warns with the costs of the widths as they are. A width more than
:data:`~widthsearch.solve.MAX_WIDTH_RATIO` (16) times its base is refused with the size the model
would have: it is almost always a typo, and building it could exhaust memory.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch._version import __version__
from widthsearch.errors import InvalidWidthsError, WidthFileError, WidthSearchWarning
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE
from widthsearch.solve.program import DEFAULT_MIN_WIDTH, MAX_WIDTH_RATIO, MODES, Budgets
from widthsearch.solve.solver import Problem
from widthsearch.space.choices import GridSpec
from widthsearch.space.width_space import WidthSpace

if TYPE_CHECKING:
    from widthsearch.solve.reconfigure import Reconfiguration

FORMAT_VERSION = 2
"""Version 2 holds each width once, in ``groups``; version 1 also had ``widths``/``base_widths``."""
READABLE_VERSIONS = (1, 2)


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
    model_sha256: str = ""
    """sha256 of the file of the model's factory when the widths were made ('' for timm)."""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Everything in the file, as read."""
    path: str = field(default="", compare=False)
    """Where the file was read from (for messages)."""

    @property
    def grid(self) -> GridSpec:
        """The width grid and ties the widths were picked on (empty: the divisor grid).

        Raises:
            GridError: the file's ``grid`` cannot be read.
        """
        return GridSpec.from_dict(self.data.get("grid"))

    def problem(self) -> Problem:
        """What the widths solved, without its budgets: mode, bounds, divisor, grid and ties,
        objective (files written before these were recorded: the defaults). Verification
        draws its controls on it (:func:`widthsearch.verify.plan.with_controls`).

        Raises:
            GridError: the file's ``grid`` cannot be read.
        """
        d = self.data
        mode = d.get("mode", "preconfig")
        return Problem(
            Budgets(),
            objective=str(d.get("objective") or DEFAULT_OBJECTIVE),
            mode=mode if mode in MODES else "preconfig",
            min_width=float(d.get("min_width", DEFAULT_MIN_WIDTH)),
            max_width=None if d.get("max_width") is None else float(d["max_width"]),
            divisor=int(d.get("divisor", 8)),
            grid=self.grid,
        )

    def space(self) -> WidthSpace:
        """The width space of the file's model, analysed anew and checked against the file.

        Raises:
            WidthFileError: the installed timm parses the model into another width space.
        """
        kwargs = dict(self.timm_kwargs)
        space = WidthSpace.from_ref(self.model, input_size=self.input_size, **kwargs)
        self.check_space(space)
        return space

    def check_space(self, space: WidthSpace) -> None:
        """Fail unless ``space`` is the width space these widths were made for, and the widths
        fit it (see :meth:`check_widths`).

        A file written with another timm version is accepted, with a warning, when the width
        space is unchanged; otherwise its widths could land on other channels, so it is refused.
        """
        self._check_structure(space)
        self.check_widths(space)

    def check_widths(self, space: WidthSpace) -> None:
        """Fail on widths ``space`` cannot build or far outside any sane range; warn when the
        recorded params and MACs are not those of the widths (a hand edit).

        Raises:
            WidthFileError: a width that is not buildable (a fixed group changed, not a multiple
                of its group's ``multiple_of``), or more than 16x its base; the message gives the
                params and MACs the model would have.
        """
        where = f"{self.path}: " if self.path else ""
        try:
            widths = space.widths(self.widths)
        except InvalidWidthsError as exc:
            raise WidthFileError(f"{where}{exc}") from None
        params, macs = space.params(widths), space.macs(widths)
        wild = [
            (g, w)
            for g, w in zip(space.groups, widths, strict=True)
            if w > MAX_WIDTH_RATIO * g.width
        ]
        if wild:
            g, w = max(wild, key=lambda gw: gw[1] / gw[0].width)
            c, h, wd = space.input_size
            raise WidthFileError(
                f"{where}group {g.id} ({g.producer}) is {w:,} channels, {w / g.width:.1f}x its "
                f"base {g.width} (at most {MAX_WIDTH_RATIO:g}x); the model would have "
                f"{params:,} params ({params / space.params():.1f}x) and {macs:,} MACs "
                f"({macs / space.macs():.1f}x) at {c}x{h}x{wd}: fix the width"
            )
        recorded = (self.data.get("params"), self.data.get("macs"))
        if tuple(space.input_size) != tuple(self.input_size):
            recorded = (recorded[0], macs)  # MACs were predicted at the file's input size
        if None not in recorded and recorded != (params, macs):
            ref = space.ref
            why = (
                f"{ref.target} changed?"
                if not ref.is_timm and self.model_sha256 and ref.sha256() != self.model_sha256
                else "edited by hand?"
            )
            warnings.warn(
                WidthSearchWarning(
                    f"{where}the widths give {params:,} params and {macs:,} MACs, not the "
                    f"{recorded[0]:,} and {recorded[1]:,} the file records ({why}); the "
                    "widths are what counts"
                ),
                stacklevel=3,
            )

    def _check_structure(self, space: WidthSpace) -> None:
        if space.model != self.model:
            raise WidthFileError(f"width file is for '{self.model}', not '{space.model}'")
        same = tuple(space.base_widths) == tuple(self.base_widths) and (
            not self.fingerprint or self.fingerprint == space.fingerprint
        )
        ref = space.ref
        if ref.is_timm:
            import timm

            now, then = timm.__version__, self.timm_version
            changed = bool(then) and then != now
            differs = f"timm {now} parses it differently from timm {then}"
            still = f"width file made with timm {then}, running timm {now}"
        else:
            now, then = ref.sha256(), self.model_sha256
            changed = bool(then) and bool(now) and then != now
            differs = f"{ref.target} changed since the width file was made"
            still = (
                f"{ref.target} changed since the width file was made (sha256 {then[:12]}, now "
                f"{now[:12]})"
            )
        if not same:
            why = differs if changed else "its groups or layers differ"
            raise WidthFileError(
                f"the width space of '{self.model}' does not match the width file ({why}); "
                "run reconfig again"
            )
        if changed:
            warnings.warn(
                WidthSearchWarning(f"{still}; the width space is unchanged, so the widths apply"),
                stacklevel=2,
            )


def width_file_dict(result: Reconfiguration, space: WidthSpace) -> dict[str, Any]:
    """The JSON object of a width file for ``result``."""
    import timm

    info = result.to_dict()
    ref = space.ref
    model: dict[str, Any] = {"model": space.model, "timm_version": timm.__version__}
    if ref.is_timm:
        model["timm_kwargs"] = dict(space.timm_kwargs)
    else:
        model.update(model_kwargs=dict(space.timm_kwargs), model_sha256=ref.sha256())
    return {
        "format_version": FORMAT_VERSION,
        "widthsearch_version": __version__,
        **model,
        "input_size": list(space.input_size),
        "space_fingerprint": space.fingerprint,
        "mode": result.mode,
        "budgets": info["budgets"],
        "min_width": result.min_width,
        "max_width": result.max_width,
        "divisor": result.divisor,
        "groups": info["groups"],
        "base_params": result.base_params,
        "base_macs": result.base_macs,
        "params": result.params,
        "macs": result.macs,
        "log_synexp_gain": result.log_synexp_gain,
        **({} if result.grid.empty else {"grid": info["grid"], "lattice": info["lattice"]}),
        "objective": result.objective,
        "held": list(result.held),
        **({"decisions": list(result.decisions)} if result.decisions else {}),
        **({"chosen_by": dict(result.chosen_by)} if result.chosen_by else {}),
    }


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write JSON atomically: a reader never sees half a file, a failure leaves none."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def save_width_file(path: str | os.PathLike, result: Reconfiguration, space: WidthSpace) -> None:
    """Write the width file of ``result``."""
    write_json(path, width_file_dict(result, space))


def load_width_file(path: str | os.PathLike, *, model: str | None = None) -> WidthFile:
    """Read and check a width file (for ``model``, when given).

    Args:
        path: a width file written by ``reconfig -o`` (or :func:`save_width_file`).
        model: the model it must be for, or None for any.

    Returns:
        The file's model, input size, base and new widths, timm kwargs and version; build it
        with :func:`widthsearch.create_model` or ``WidthSpace.realize``.

    Raises:
        WidthFileError: the file is missing, not JSON, of an unknown format version, for another
            model, its widths are not positive integers, one per channel group, or (version 1)
            its two copies of the widths disagree.
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
    if version not in READABLE_VERSIONS:
        raise WidthFileError(
            f"{path} has format_version {version!r}; this widthsearch reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        name = str(data["model"])
        base, widths = (_widths_v1 if version == 1 else _widths_v2)(path, data)
        input_size = tuple(_ints(path, data["input_size"], "input_size"))
    except KeyError as exc:
        raise WidthFileError(f"{path} lacks the field {exc}") from None
    if model is not None and name != model:
        raise WidthFileError(f"{path} holds widths for '{name}', not '{model}'")
    if len(widths) != len(base):
        raise WidthFileError(
            f"{path}: {len(widths)} widths for the {len(base)} channel groups of {name}"
        )
    key = "model_kwargs" if "model_kwargs" in data else "timm_kwargs"
    kwargs = data.get(key) or {}
    if not isinstance(kwargs, dict):
        raise WidthFileError(f"{path}: '{key}' must be an object")
    return WidthFile(
        model=name,
        input_size=input_size,
        base_widths=tuple(base),
        widths=tuple(widths),
        timm_kwargs=kwargs,
        timm_version=str(data.get("timm_version", "")),
        fingerprint=str(data.get("space_fingerprint", "")),
        model_sha256=str(data.get("model_sha256", "")),
        data=data,
        path=str(path),
    )


def _widths_v2(path: Any, data: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """Base and new widths from ``groups``, the one copy (listed by id from 0)."""
    groups = data["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise WidthFileError(f"{path}: 'groups' must be a list of objects, one per channel group")
    for i, g in enumerate(groups):
        if g.get("id") != i:
            raise WidthFileError(
                f"{path}: groups[{i}] has id {g.get('id')!r}; groups are listed by id from 0"
            )
    try:
        base = _ints(path, [g["base"] for g in groups], "base", each="groups[{i}].base")
        widths = _ints(path, [g["width"] for g in groups], "width", each="groups[{i}].width")
    except KeyError as exc:
        raise WidthFileError(f"{path}: a group lacks the field {exc}") from None
    return base, widths


def _widths_v1(path: Any, data: Mapping[str, Any]) -> tuple[list[int], list[int]]:
    """Base and new widths from a version 1 file's ``widths`` list, which must agree with the
    readable copy in ``groups``."""
    base = _ints(path, data["base_widths"], "base_widths")
    widths = _ints(path, data["widths"], "widths")
    groups = data.get("groups")
    if isinstance(groups, list):
        for i, g in enumerate(groups):
            if not isinstance(g, dict) or "width" not in g or i >= len(widths):
                continue
            if g["width"] != widths[i]:
                raise WidthFileError(
                    f"{path}: group {i} ({g.get('producer', '?')}) has width {g['width']!r} in "
                    f"'groups' but {widths[i]} in 'widths'; this version-1 file holds the widths "
                    "twice and they disagree: make both copies say the same, or run reconfig again"
                )
    return base, widths


def _ints(path: Any, values: Any, name: str, each: str | None = None) -> list[int]:
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise WidthFileError(f"{path}: '{name}' must be a list of positive integers")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            where = each.format(i=i) if each else f"'{name}' entry {i}"
            raise WidthFileError(f"{path}: {where} is {v!r}; widths must be positive integers")
    return list(values)


__all__ = [
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "WidthFile",
    "WidthFileError",
    "load_width_file",
    "save_width_file",
    "width_file_dict",
    "write_json",
]
