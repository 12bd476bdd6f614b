"""Where the model of a width space comes from: a model reference, or a copy of a given module.

A **model reference** (:class:`ModelRef`) is what a user writes for ``MODEL``: a timm name
(``resnet18``), a file and a name in it (``path/to/net.py:Net``) or an importable module and a
name in it (``mypackage.nets:make_net``), the name a class or function that returns an
``nn.Module``, plus keyword arguments for it. It is plain data (a string and a JSON object), so
a search worker or a verification worker in another process builds the same model from it.
This module is the one place where such a string becomes a model.

A width space keeps a *factory*, a call that gives a fresh base model, so that realization and
the costs beyond params and MACs start from an unchanged model.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from widthsearch.errors import (
    ModelFactoryError,
    ModelRefError,
    UnknownModelError,
    UnsupportedModelError,
)

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


_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_FORMS = "a timm name, FILE.py:NAME or package.module:NAME"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass(frozen=True)
class ModelRef:
    """A model reference: a timm name, or a factory in a file or module, with its kwargs.

    Example:
        >>> ref = ModelRef.parse("nets/tiny.py:TinyNet", {"widths": [16, 32]})
        >>> ref.kind, ref.target, ref.name, ref.describe()
        ('file', 'nets/tiny.py', 'TinyNet', 'nets/tiny.py:TinyNet')
    """

    kind: Literal["timm", "file", "module"]
    target: str
    """The timm name, the file's path as given, or the dotted module name."""
    name: str = ""
    """The class or function in the file or module ('' for timm)."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``timm.create_model`` or the factory."""

    @classmethod
    def parse(cls, text: str, kwargs: Mapping[str, Any] | None = None) -> ModelRef:
        """The reference ``text`` means: no colon, a timm name; ``LEFT:NAME`` with a ``LEFT``
        that ends in ``.py`` or holds a path separator, a file; else a dotted module.

        Raises:
            ModelRefError: ``NAME`` is not an identifier, or ``LEFT`` is neither a path nor a
                module name.
        """
        text = str(text).strip()
        kw = dict(kwargs or {})
        if ":" not in text:
            return cls("timm", text, "", kw)
        left, _, name = text.rpartition(":")
        if not name.isidentifier():
            raise ModelRefError(
                f"MODEL '{text}': '{name}' is not a Python name; give {_FORMS}, where NAME is a "
                "class or function that returns an nn.Module"
            )
        if left.endswith(".py") or "/" in left or os.sep in left:
            return cls("file", left, name, kw)
        if _MODULE.match(left):
            return cls("module", left, name, kw)
        raise ModelRefError(f"MODEL '{text}' is neither {_FORMS}")

    @property
    def is_timm(self) -> bool:
        return self.kind == "timm"

    def describe(self) -> str:
        """The reference as the user writes it (``resnet18``, ``net.py:Net``)."""
        return self.target if self.is_timm else f"{self.target}:{self.name}"

    @property
    def slug(self) -> str:
        """A short name made of letters, digits and ``_`` for file and entrypoint names: the
        timm name, or ``NAME`` for a factory."""
        return re.sub(r"\W", "_", self.target if self.is_timm else self.name)

    def source(self) -> dict[str, Any] | None:
        """Where the factory lives, as :mod:`widthsearch.space._portable` reads it (None for
        timm): ``{"file", "resolved", "name", "sha256"}`` or ``{"module", "name", "sha256"}``."""
        if self.is_timm:
            return None
        if self.kind == "module":
            return {"module": self.target, "name": self.name, "sha256": self.sha256()}
        return {
            "file": self.target,
            "resolved": os.path.abspath(self.target),
            "name": self.name,
            "sha256": self.sha256(),
        }

    def sha256(self) -> str:
        """The sha256 of the factory's file ('' for timm, or a module without a file)."""
        from widthsearch.space import _portable

        if self.is_timm:
            return ""
        path = _portable.source_file({self.kind: self.target})
        return "" if path is None else _portable.file_sha256(path)

    def factory(self) -> Any:
        """The class or function the reference names (not for timm).

        Raises:
            ModelRefError: no such file or module, a file that fails to import, no such name.
        """
        from widthsearch.space import _portable

        where = self.describe()
        if self.kind == "file" and not os.path.isfile(self.target):
            raise ModelRefError(
                f"MODEL '{where}': there is no file '{self.target}' (paths are relative to the "
                f"current folder, {os.getcwd()})"
            )
        try:
            module = _portable.source_module({self.kind: self.target})
        except ModuleNotFoundError as exc:
            if self.kind == "module" and exc.name and self.target.startswith(exc.name):
                raise ModelRefError(
                    f"MODEL '{where}': no module '{exc.name}' (install it, or put its folder on "
                    "PYTHONPATH)"
                ) from None
            raise ModelRefError(
                f"MODEL '{where}': importing it failed: {_first_line(exc)}"
            ) from None
        except Exception as exc:  # the user's module itself fails
            raise ModelRefError(
                f"MODEL '{where}': importing {self.target} failed: {_first_line(exc)}"
            ) from None
        factory = getattr(module, self.name, None)
        if factory is None or not callable(factory):
            names = sorted(
                n
                for n, v in vars(module).items()
                if not n.startswith("_")
                and isinstance(v, type | types.FunctionType)
                and getattr(v, "__module__", None) == module.__name__
            )
            close = difflib.get_close_matches(self.name, names, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else (
                    f"it defines {', '.join(names)}" if names else "it defines no class or function"
                )
            )
            what = "no class or function" if factory is None else "a non-callable"
            raise ModelRefError(f"MODEL '{where}': {self.target} has {what} '{self.name}' ({hint})")
        return factory

    def build(self, **extra: Any) -> nn.Module:
        """A fresh model: ``timm.create_model(name, pretrained=False, **kwargs)``, or the
        factory called with ``kwargs`` (``extra`` on top).

        Raises:
            UnknownModelError: an unknown timm name.
            ModelRefError: see :meth:`factory`.
            ModelFactoryError: the factory raised, or returned something not an ``nn.Module``.
        """
        kwargs = {**self.kwargs, **extra}
        if self.is_timm:
            return create_timm_model(self.target, **kwargs)
        from torch import nn

        factory = self.factory()
        call = f"{self.describe()}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        try:
            model = factory(**kwargs)
        except Exception as exc:
            if _is_download(exc):
                raise ModelFactoryError(
                    f"{call} tried to download weights and failed ({_first_line(exc)}); "
                    f"{_untrained_hint(factory, kwargs)}"
                ) from None
            raise ModelFactoryError(
                f"{call} raised {_first_line(exc)}; fix the factory or --model-kwargs"
            ) from None
        if not isinstance(model, nn.Module):
            raise ModelFactoryError(
                f"{call} returned a {type(model).__name__}, not a torch nn.Module"
            )
        return model


_WEIGHT_ARGS = ("weights", "weights_backbone", "pretrained", "pretrained_backbone")
"""Keyword arguments by which factories (torchvision's, most others) load pretrained weights."""


def _is_download(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) is a failed download: a URL or HTTP
    error, a refused connection, a name that does not resolve."""
    import socket
    import urllib.error

    seen: BaseException | None = exc
    for _ in range(8):  # the chain of causes, not forever
        if seen is None:
            return False
        if isinstance(seen, urllib.error.URLError | ConnectionError | socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _untrained_hint(factory: Any, kwargs: Mapping[str, Any]) -> str:
    """Which arguments build ``factory``'s model without weights: those of
    :data:`_WEIGHT_ARGS` its signature defaults to something, as ``--model-kwargs``."""
    import inspect

    try:
        params: Mapping[str, inspect.Parameter] = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    off = {}
    for name in _WEIGHT_ARGS:
        p = params.get(name)
        if p is None or name in kwargs and kwargs[name] in (None, False):
            continue
        if name in kwargs or p.default not in (None, False, p.empty):
            off[name] = False if "pretrained" in name else None
    if not off:
        return (
            "widthsearch needs no weights: build the model untrained (torchvision: "
            """--model-kwargs '{"weights": null, "weights_backbone": null}')"""
        )
    text = json.dumps({**{k: v for k, v in kwargs.items() if k not in off}, **off})
    names = " and ".join(f"{n} (given)" if n in kwargs else f"{n} (by default)" for n in off)
    return (
        f"it loads pretrained weights through {names}; widthsearch needs none: "
        f"--model-kwargs '{text}' builds it untrained"
    )


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """``--model-kwargs``: a JSON object (``'{"num_classes": 10}'``); None or '' gives ``{}``.

    Raises:
        ModelRefError: not JSON, or JSON that is not an object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelRefError(
            f"--model-kwargs is not JSON ({exc.msg} at character {exc.pos}); give an object "
            """such as '{"num_classes": 10}'"""
        ) from None
    if not isinstance(value, dict):
        raise ModelRefError(
            f"--model-kwargs must be a JSON object of keyword arguments, not a "
            f"{type(value).__name__} ({text})"
        )
    return value


@dataclass(frozen=True)
class RefFactory:
    """A fresh model of ``ref`` on every call (picklable: a string and kwargs)."""

    ref: ModelRef

    def __call__(self) -> nn.Module:
        return self.ref.build()


def model_slug(model: str) -> str:
    """:attr:`ModelRef.slug` of a width space's ``model`` string, for file names."""
    try:
        return ModelRef.parse(model).slug
    except ModelRefError:
        return re.sub(r"\W", "_", model)


__all__ = [
    "CopyFactory",
    "ModelRef",
    "RefFactory",
    "TimmFactory",
    "create_timm_model",
    "example_batch",
    "model_slug",
    "parse_model_kwargs",
]
