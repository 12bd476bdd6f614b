"""Which latency model a command uses: a given profile, a cached quick one, or one made now.

``reconfig``, ``search`` and ``bench`` take ``--profile``; without one they use the quick profile
of the model on this device from the cache (``widthsearch profile`` without ``-o`` fills it), and
make one (about a minute) when there is none.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from widthsearch.errors import ProfileError
from widthsearch.hardware.latency_model import LatencyModel
from widthsearch.hardware.profile import Profile
from widthsearch.hardware.profiling import (
    DEFAULT_SAMPLES,
    QUICK_SECONDS,
    SolvedWidths,
    make_profile,
)
from widthsearch.hardware.timing import Device, current_device
from widthsearch.space.source import model_slug

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/widthsearch/profiles`` (default ``~/.cache/widthsearch/profiles``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "widthsearch" / "profiles"


def cache_path(space: WidthSpace, device: Device) -> Path:
    """Where the quick profile of ``space`` on ``device`` is cached (one file per model, input
    size, timm kwargs, width space and device setting)."""
    what = [device.to_dict(), space.model, list(space.input_size), space.timm_kwargs]
    key = json.dumps([*what, space.fingerprint], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{model_slug(space.model)}-{device.type}-{digest}.json"


@dataclass(frozen=True)
class Resolved:
    """A latency model and where it came from, for the output."""

    model: LatencyModel
    note: str


def resolve_latency_model(
    space: WidthSpace,
    *,
    profile: str | os.PathLike | None = None,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    seconds: float = QUICK_SECONDS,
    samples: int = DEFAULT_SAMPLES,
    solved_widths: SolvedWidths,
    progress: Callable[[str], None] | None = None,
) -> Resolved:
    """The latency model for ``space``: from ``profile`` (checked against this device), or a
    cached quick profile, made now (about a minute) if there is none.

    Settings not given (threads, batch size, dtype) are the profile's when one is given, else
    torch's thread count, batch 1 and float32. ``seconds`` and ``samples`` size a quick
    profile, and ``solved_widths`` (:func:`widthsearch.solve.solved_widths`) proposes the
    solver's width vectors for it (:func:`~widthsearch.hardware.profiling.make_profile`).

    Raises:
        ProfileError: the profile is unreadable or was measured on another device or setting.
        DeviceError: the device is not available.
    """
    if profile is not None:
        prof = Profile.load(profile)
        here = current_device(
            device if device else prof.device.type,
            threads=threads or (prof.device.threads if prof.device.type == "cpu" else None),
            batch_size=batch_size or prof.device.batch_size,
            dtype=dtype or prof.device.dtype,
        )
        prof.check(here, str(profile))
        model = prof.latency_model(space)
        return Resolved(model, f"latency model: {model.source} (profile {profile})")
    here = current_device(
        device, threads=threads, batch_size=batch_size or 1, dtype=dtype or "float32"
    )
    path = cache_path(space, here)
    if path.exists():
        try:
            prof = Profile.load(path)
            prof.check(here, str(path))
            model = prof.latency_model(space)
            return Resolved(model, f"latency model: {model.source} (cached quick profile {path})")
        except ProfileError:
            pass  # a damaged or stale cache entry is made again
    start = time.perf_counter()
    prof = make_profile(
        [space],
        here,
        solved_widths=solved_widths,
        samples=samples,
        seconds=seconds,
        progress=progress,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    prof.save(path)
    model = prof.latency_model(space)
    note = (
        f"latency model: no --profile given, so a quick profile was made in "
        f"{time.perf_counter() - start:.0f} s and cached at {path}; {model.source}"
    )
    return Resolved(model, note)


__all__ = ["Resolved", "cache_dir", "cache_path", "resolve_latency_model"]
