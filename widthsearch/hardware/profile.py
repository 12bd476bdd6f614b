"""A device's latency profile: the timings of models at many widths and the fits made of them.

A profile is the JSON file ``widthsearch profile`` writes (and the quick profiles in the cache,
:mod:`widthsearch.hardware.resolve`): the device and its settings, per model a :class:`ModelFit`
(every width vector timed, with its features, and the coefficients fitted to them), and one fit
pooled over all models for models it has no fit for. It is refused on another device or setting:
latencies do not carry across them. :mod:`widthsearch.hardware.profiling` makes one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch.errors import ProfileError
from widthsearch.hardware.latency_model import (
    FEATURES,
    LatencyModel,
    fit_coefficients,
    fit_errors,
)
from widthsearch.hardware.timing import Device

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace

FORMAT = "widthsearch-latency-profile"
FORMAT_VERSION = 1
UNRELIABLE = 0.15
"""A fit whose median error exceeds this says so wherever it is used."""


@dataclass(frozen=True)
class ModelFit:
    """The timings of one model at many widths and the coefficients fitted to them."""

    model: str
    input_size: tuple[int, ...]
    timm_kwargs: Mapping[str, Any]
    fingerprint: str
    coefficients: dict[str, float]
    errors: dict[str, float]
    samples: tuple[dict[str, Any], ...]
    """Per width vector: ``widths``, ``ms`` (median), ``spread`` (IQR / median), ``features``."""
    seconds: float = 0.0

    def matches(self, space: WidthSpace) -> bool:
        return (
            self.model == space.model
            and tuple(self.input_size) == tuple(space.input_size)
            and dict(self.timm_kwargs) == dict(space.timm_kwargs)
            and self.fingerprint == space.fingerprint
        )

    def describe(self) -> str:
        c, h, w = self.input_size
        return f"{self.model} at {c}x{h}x{w}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "timm_kwargs": dict(self.timm_kwargs),
            "fingerprint": self.fingerprint,
            "coefficients": dict(self.coefficients),
            "errors": dict(self.errors),
            "seconds": self.seconds,
            "samples": [dict(s) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelFit:
        return cls(
            model=d["model"],
            input_size=tuple(d["input_size"]),
            timm_kwargs=dict(d.get("timm_kwargs", {})),
            fingerprint=d["fingerprint"],
            coefficients={k: float(v) for k, v in d["coefficients"].items()},
            errors={k: float(v) for k, v in d["errors"].items()},
            samples=tuple(d["samples"]),
            seconds=float(d.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class Profile:
    """A device's latency profile: fits per model, and one pooled over all of them."""

    device: Device
    fits: tuple[ModelFit, ...]
    pooled: dict[str, float] = field(default_factory=dict)
    """Coefficients fitted to every sample of every model: for models without a fit."""
    pooled_errors: dict[str, float] = field(default_factory=dict)
    created: str = ""

    # -------------------------------------------------------------- use
    def check(self, device: Device, path: str = "the profile") -> None:
        """Refuse a profile measured elsewhere: latencies do not carry across devices."""
        why = device.mismatch(self.device)
        if why:
            raise ProfileError(
                f"{path} was measured on another device or setting: {why}; run "
                "`widthsearch profile` here or drop --profile for a quick one"
            )

    def fit_for(self, space: WidthSpace) -> ModelFit | None:
        return next((f for f in self.fits if f.matches(space)), None)

    def latency_model(self, space: WidthSpace) -> LatencyModel:
        """The latency model of ``space``: its own fit if the profile has one, else pooled."""
        fit = self.fit_for(space)
        if fit is not None:
            err = fit.errors.get("cv_median_abs_error", math.nan)
            if math.isnan(err):
                err = fit.errors["median_abs_error"]
            source = (
                f"fitted to {len(fit.samples)} width vectors of {fit.describe()} on "
                f"{self.device.describe()}; median error {100 * err:.1f}%"
            )
            if err > UNRELIABLE:
                source += (
                    " (unreliable: the timings were noisy; on a busy machine pin threads with "
                    "--threads 1, or profile longer with widthsearch profile --seconds)"
                )
            return LatencyModel.from_coefficients(space, fit.coefficients, self.device, source, err)
        if not self.pooled:
            raise ProfileError("the profile has no fits")
        names = ", ".join(f.describe() for f in self.fits)
        err = self.pooled_errors.get("median_abs_error", math.nan)
        source = (
            f"pooled fit over {names} on {self.device.describe()} (no fit for {space.model} "
            f"at this input size; median error on those models {100 * err:.1f}%)"
        )
        return LatencyModel.from_coefficients(space, self.pooled, self.device, source, err)

    # -------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "device": self.device.to_dict(),
            "features": list(FEATURES),
            "pooled": dict(self.pooled),
            "pooled_errors": dict(self.pooled_errors),
            "fits": [f.to_dict() for f in self.fits],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "profile") -> Profile:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise ProfileError(f"{source} is not a widthsearch latency profile")
        if d.get("format_version") != FORMAT_VERSION:
            raise ProfileError(
                f"{source} has format version {d.get('format_version')}, this widthsearch "
                f"reads {FORMAT_VERSION}; make it again with `widthsearch profile`"
            )
        if list(d.get("features", [])) != list(FEATURES):
            raise ProfileError(f"{source} was fitted with other latency terms; make it again")
        try:
            return cls(
                device=Device.from_dict(d["device"]),
                fits=tuple(ModelFit.from_dict(f) for f in d["fits"]),
                pooled={k: float(v) for k, v in d.get("pooled", {}).items()},
                pooled_errors={k: float(v) for k, v in d.get("pooled_errors", {}).items()},
                created=str(d.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"{source} is damaged ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | os.PathLike) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Profile:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ProfileError(f"no latency profile at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path} is not JSON ({exc})") from None
        return cls.from_dict(data, str(path))


def pooled_fit(fits: Sequence[ModelFit]) -> tuple[dict[str, float], dict[str, float]]:
    """Coefficients fitted to every sample of every fit, and their errors (see
    :func:`~widthsearch.hardware.latency_model.fit_errors`): the model for models without a fit.
    """
    rows = [s["features"] for f in fits for s in f.samples]
    ms = [s["ms"] for f in fits for s in f.samples]
    coef = fit_coefficients(rows, ms)
    return dict(zip(FEATURES, coef, strict=True)), fit_errors(rows, ms)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "UNRELIABLE",
    "ModelFit",
    "Profile",
    "ProfileError",
    "pooled_fit",
]
