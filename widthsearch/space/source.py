"""Where the model of a width space comes from: timm by name, or a copy of a given module.

A width space keeps a *factory*, a call that gives a fresh base model, so that realization and
the costs beyond params and MACs start from an unchanged model.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from widthsearch.errors import UnknownModelError, UnsupportedModelError

if TYPE_CHECKING:
    import torch
    from torch import nn


def create_timm_model(name: str, **timm_kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=False, ...)`` with a helpful unknown-name error."""
    import timm

    if not timm.is_model(name):
        names = timm.list_models()
        normal = name.strip().lower().replace("-", "_")
        close = [n for n in names if n == normal]  # efficientnet-B0 -> efficientnet_b0 first
        close += [
            n for n in difflib.get_close_matches(normal, names, n=5, cutoff=0.6) if n not in close
        ][: 5 - len(close)]
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise UnknownModelError(
            f"unknown model '{name}'{hint} (timm.list_models() lists all names)"
        )
    timm_kwargs.pop("pretrained", None)
    try:
        return timm.create_model(name, pretrained=False, **timm_kwargs)
    except TypeError as exc:
        raise UnsupportedModelError(
            f"timm cannot build '{name}' with {timm_kwargs}: {exc}"
        ) from exc


def example_batch(input_size: Sequence[int]) -> torch.Tensor:
    """A batch of one zero image of ``input_size`` (C, H, W), the input a timm model is traced on.

    Raises:
        ValueError: ``input_size`` is not three positive sizes.
    """
    import torch

    size = tuple(int(s) for s in input_size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"input size must be C,H,W with positive sizes, got {input_size!r}")
    return torch.zeros(1, *size)


@dataclass(frozen=True)
class TimmFactory:
    """A fresh timm model ``name`` built with ``kwargs`` on every call."""

    name: str
    kwargs: Mapping[str, Any]

    def __call__(self) -> nn.Module:
        return create_timm_model(self.name, **dict(self.kwargs))


@dataclass(frozen=True)
class CopyFactory:
    """A deep copy of ``model`` on every call, taken then (so later changes to it count)."""

    model: nn.Module

    def __call__(self) -> nn.Module:
        return copy.deepcopy(self.model)


__all__ = ["CopyFactory", "TimmFactory", "create_timm_model", "example_batch"]
