"""Build a timm model at new channel widths with timm's own code, importing only torch and timm.

widthsearch builds models with this module, and ``widthsearch export`` copies its source into
the generated model file, so a model made from a width file is the same model with or without
widthsearch installed. What to build is a *spec*, plain JSON-ready data:

``name``, ``base`` and ``input_size``
    the new model's name (the exported entrypoint), the timm model the widths were found for,
    e.g. ``"efficientnet_b0"``, and the input size they were found at: the built model's
    ``pretrained_cfg`` carries the name, the base's data settings and no weight location.
``family`` and ``native``
    the part timm's own builders construct: EfficientNet/MobileNetV2 (``_create_effnet``) and
    MobileNetV3 (``_create_mnv3``) take the stem width, each block's output, expansion and
    squeeze-excite widths, and the head width as block arguments; ResNet takes its stage
    ``channels``. ``native`` is None for other families.
``layers``
    ``[name, kind, in, out, param_dim]`` for every width-carrying layer at the new widths
    (``None``: keep the module's own, for the image channels and the classes). Layers that the
    native build already made at those widths are left alone; the others are rebuilt here, and
    then the family's own init runs again.
``timm_kwargs``
    kwargs the widths were found with; kwargs given to :func:`build` override them.
``source``
    for a model that is not timm's: where its factory lives, ``{"file": PATH, "name": NAME}``
    (``resolved``: the absolute path, tried when ``PATH`` is not found from the current folder)
    or ``{"module": "package.module", "name": NAME}``, and the ``sha256`` of its file. The
    factory is called with the kwargs, and its model rebuilt at the new widths.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import timm
import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


class NativeBuildError(ValueError):
    """A spec's native part asks for something timm's builder cannot express."""


# ------------------------------------------------------------------------------------ build
def build(spec: dict[str, Any], **kwargs: Any) -> nn.Module:
    """The model of ``spec``, built by timm and freshly initialized by its family's init.

    Its ``pretrained_cfg`` names the new model and points at no weights (:func:`own_cfg`);
    a ``pretrained_cfg_overlay`` given to ``timm.create_model`` is applied on top.
    """
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    for key in ("pretrained_cfg", "cache_dir"):
        kwargs.pop(key, None)
    if kwargs.pop("pretrained", False):
        raise ValueError("width-searched models have no pretrained weights (pretrained=False)")
    kwargs = {**spec.get("timm_kwargs", {}), **kwargs}
    if spec.get("source"):
        model = load_factory(spec["source"])(**kwargs)
        return rebuild(model, spec["layers"], kwargs, spec.get("init_family", ""))
    family, native = spec.get("family"), spec.get("native")
    if native and family in ("efficientnet", "mobilenetv3"):
        model = _build_effnet_family(spec["base"], family, native, kwargs)
    elif native and family == "resnet":
        model = timm.create_model(
            spec["base"], pretrained=False, channels=native["channels"], **kwargs
        )
    else:
        model = timm.create_model(spec["base"], pretrained=False, **kwargs)
    model = rebuild(model, spec["layers"], kwargs, spec.get("init_family", type(model).__module__))
    cfg = own_cfg(getattr(model, "pretrained_cfg", None) or {}, spec, kwargs)
    cfg.update(overlay or {})
    model.pretrained_cfg = model.default_cfg = cfg
    return model


# ----------------------------------------------------------------------------- user factories
_FILE_MODULES: dict[str, tuple[tuple[int, int], Any]] = {}
"""Modules imported from files, by absolute path, with the (mtime, size) they were read at."""


def source_file(source: dict[str, Any]) -> str | None:
    """The file of a ``source`` (see the module docstring) that exists, or None: a ``file``
    as given (from the current folder), else its ``resolved`` absolute path; a ``module``'s
    file where it has one."""
    if source.get("module"):
        try:
            spec = importlib.util.find_spec(source["module"])
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
        return origin if origin and os.path.isfile(origin) else None
    for path in (source.get("file"), source.get("resolved")):
        if path and os.path.isfile(path):
            return os.path.abspath(path)
    return None


def file_sha256(path: str) -> str:
    """The sha256 of the file at ``path``, in hex."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def import_file(path: str) -> Any:
    """The module of the Python file ``path``, imported once per version of the file.

    It is registered in ``sys.modules`` under a name made from its path (so dataclasses and
    pickling find it), and the file's folder is on ``sys.path`` while it runs, so that it can
    import its neighbours.
    """
    path = os.path.abspath(path)
    stat = os.stat(path)
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _FILE_MODULES.get(path)
    if cached is not None and cached[0] == version:
        return cached[1]
    stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
    name = f"_user_model_file_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(path)
    sys.modules[name] = module
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    _FILE_MODULES[path] = (version, module)
    return module


def source_module(source: dict[str, Any]) -> Any:
    """The module a ``source`` names, imported.

    Raises:
        FileNotFoundError: a ``file`` that is neither where it was given nor where it was.
        ImportError: a module that is not installed; any error the module raises on import.
    """
    if source.get("module"):
        return importlib.import_module(source["module"])
    path = source_file(source)
    if path is None:
        raise FileNotFoundError(f"no file {source.get('file')!r}")
    return import_file(path)


def load_factory(source: dict[str, Any]) -> Callable[..., nn.Module]:
    """The class or function ``source["name"]`` of the module ``source`` names.

    Raises:
        AttributeError: the module has no such name (or it is not callable); and the errors of
            :func:`source_module`.
    """
    module = source_module(source)
    factory = getattr(module, source["name"], None)
    if not callable(factory):
        raise AttributeError(f"{module.__name__} has no callable '{source['name']}'")
    return factory


# ------------------------------------------------------------------------------ pretrained_cfg
# what describes the base model's weights, not the architecture: dropped for a new model
_WEIGHT_KEYS = (
    "url",
    "file",
    "state_dict",
    "hf_hub_id",
    "hf_hub_filename",
    "source",
    "tag",
    "custom_load",
    "license",
    "description",
    "origin_url",
    "notes",
    "label_offset",
    "label_names",
    "label_descriptions",
    "test_input_size",
    "test_crop_pct",
    "test_pool_size",
)


def own_cfg(base_cfg: dict, spec: dict[str, Any], kwargs: dict | None = None) -> dict:
    """The ``pretrained_cfg`` of the model ``spec`` builds, from its base model's.

    The new model has its own name (``spec["name"]``) and no weights to load: the weight
    location, tag, license and labels of the base's weights go. Its data settings (mean, std,
    interpolation, crop) stay for ``timm.data.resolve_data_config``; ``input_size`` is the one
    the widths were found at, and ``num_classes``/``in_chans`` follow ``kwargs``.
    """
    kwargs = kwargs or {}
    cfg = {k: v for k, v in dict(base_cfg).items() if k not in _WEIGHT_KEYS}
    cfg["architecture"] = spec.get("name") or f"{spec['base']}_ws"
    if spec.get("input_size"):
        size = tuple(spec["input_size"])
        if kwargs.get("in_chans"):
            size = (int(kwargs["in_chans"]), *size[1:])
        if tuple(cfg.get("input_size") or ()) != size:
            cfg["input_size"] = size
            cfg["pool_size"] = None  # the base's pool size is for its own input size
    if kwargs.get("num_classes") is not None:
        cfg["num_classes"] = int(kwargs["num_classes"])
    return cfg


def registry_cfg(spec: dict[str, Any]) -> dict:
    """The default cfg to register the exported entrypoint with (see :func:`own_cfg`)."""
    from timm.models import get_pretrained_cfg

    base = get_pretrained_cfg(spec["base"])
    return own_cfg(base.to_dict() if base is not None else {}, spec, spec.get("timm_kwargs"))


def rebuild(
    model: nn.Module, layers: list, kwargs: dict, family: str, init: bool = True
) -> nn.Module:
    """Resize ``model`` to ``layers`` in place; if anything changed, re-run ``family``'s init
    and keep timm's head-size attributes in step. Returns the model.

    ``init=False`` leaves the resized parameters uninitialized (for checking shapes only).
    """
    head = _head_attrs(model)
    if resize(model, layers, init):
        if init:
            family_init(model, kwargs, family)
        _sync_head(model, head)
    return model


class _Captured(Exception):
    pass


def _keep_channels(channels: int) -> int:
    return channels


def _build_effnet_family(base: str, family: str, native: dict, kwargs: dict) -> nn.Module:
    """Let timm's entrypoint assemble its builder kwargs, set our widths in them, then build."""
    from timm.models import efficientnet, mobilenetv3
    from timm.models._efficientnet_blocks import SqueezeExcite

    module, create = (
        (efficientnet, "_create_effnet")
        if family == "efficientnet"
        else (mobilenetv3, "_create_mnv3")
    )
    original = getattr(module, create)
    captured: dict[str, Any] = {}

    def capture(variant: str, pretrained: bool = False, **model_kwargs: Any) -> None:
        captured.update(variant=variant, model_kwargs=model_kwargs)
        raise _Captured

    setattr(module, create, capture)
    try:
        timm.create_model(base, pretrained=False, **kwargs)
    except _Captured:
        pass
    finally:
        setattr(module, create, original)
    if not captured:
        raise NativeBuildError(f"timm's '{base}' does not build through {create}")
    mk = captured["model_kwargs"]
    mk.update(round_chs_fn=_keep_channels, fix_stem=True, stem_size=native["stem"])
    if native.get("head") is not None:
        mk["num_features"] = native["head"]
    se_layer = mk.get("se_layer") or SqueezeExcite
    stages = mk["block_args"]
    if [len(s) for s in stages] != [len(s) for s in native["blocks"]]:
        raise NativeBuildError(f"'{base}' block layout differs from the spec")
    for stage, widths in zip(stages, native["blocks"], strict=True):
        for ba, w in zip(stage, widths, strict=True):
            in_chs = ba.get("force_in_chs") or w["in"]
            ba["out_chs"] = w["out"]
            if "mid" in w:
                ba["exp_ratio"] = w["mid"] / in_chs
            if "rd" in w:
                ba["se_ratio"] = None  # the builder keeps a se_layer it finds in the block args
                ba["se_layer"] = partial(se_layer, rd_channels=w["rd"])
            if w.get("noskip"):
                ba["noskip"] = True
            if "group_size" in w:
                ba["group_size"] = w["group_size"]
    return original(captured["variant"], pretrained=False, **mk)


# ----------------------------------------------------------------------------------- resize
def find(model: nn.Module, name: str) -> nn.Module | None:
    """The module ``name``, also inside timm's feature wrappers (``stages.0`` -> ``stages_0``)."""
    parts = name.split(".") if name else []
    candidates = [parts] + [["_".join(parts[: k + 1]), *parts[k + 1 :]] for k in (1, 2)]
    for cand in candidates:
        try:
            return model.get_submodule(".".join(cand))
        except AttributeError:
            continue
    return None


def resize(model: nn.Module, layers: list, init: bool = True) -> bool:
    """Rebuild every listed layer that is not at its width yet; True if any was.

    Rows of kind ``scale`` and ``filter`` name a parameter or buffer, rows of kind ``attr`` a
    module attribute that holds split sizes (set to the row's value). With ``init=False`` the
    new parameters are left uninitialized: for checking shapes only.
    """
    changed = False
    for name, kind, n_in, n_out, param_dim in layers:
        if kind in ("scale", "filter", "attr"):
            module_name, _, attr = name.rpartition(".")
            module = find(model, module_name)
            if module is None or n_in is None:  # a features_only model, or a fixed group
                continue
            if kind == "attr":
                changed |= _set_sizes(module, attr, n_in)
            elif kind == "filter":
                changed |= _resize_filter(module, attr, n_in, n_out)
            elif getattr(module, attr).shape[param_dim] != n_in:
                _resize_loose(module, attr, param_dim, n_in, init)
                changed = True
            continue
        if kind == "pool":  # a matmul without parameters: nothing to resize
            continue
        module = find(model, name)
        if module is None or kind == "chanconv":  # a features_only head; width-independent
            continue
        changed |= _RESIZERS[kind](module, kind, n_in, n_out, init)
    return changed


def _set_sizes(module: nn.Module, attr: str, value: int | list[int]) -> bool:
    """Set a split-size attribute (an int, or a tuple/list of ints kept as its own type)."""
    old = getattr(module, attr)
    new = value if isinstance(value, int) else type(old)(value)
    if new == old:
        return False
    setattr(module, attr, new)
    return True


def _resize_filter(module: nn.Module, attr: str, n_in: int, n_out: int | None) -> bool:
    """A fixed filter with one copy per channel (``BlurPool2d.filt``): as many copies as the
    new channels, and the module's channel count in step."""
    old = getattr(module, attr)
    n = n_in if n_out is None else n_out
    if not attr or old.shape[0] in (1, n):
        return False
    setattr(module, attr, old[:1].expand(n, *old.shape[1:]).clone())
    _sync_width_attrs(module, old.shape[0], n)
    return True


def _constant(t: torch.Tensor | None) -> float | None:
    """The single value of ``t`` if all its entries are equal, else None."""
    if t is None or t.numel() == 0:
        return None
    flat = t.detach().reshape(-1)
    return float(flat[0]) if bool((flat == flat[0]).all()) else None


def _swap(module: nn.Module, shapes: dict, reset, init: bool = True) -> None:
    """New parameters of the given shapes, reset, then the ones that were constant refilled."""
    constants = {a: _constant(getattr(module, a)) if init else None for a in shapes}
    for a, shape in shapes.items():
        old = getattr(module, a)
        if old is not None:
            new = torch.empty(*shape, dtype=old.dtype, device=old.device)
            setattr(module, a, nn.Parameter(new, requires_grad=old.requires_grad))
    if init:
        reset()
    with torch.no_grad():
        for a, value in constants.items():
            if value is not None and getattr(module, a) is not None:
                getattr(module, a).fill_(value)


def _resize_conv(
    m: nn.Conv2d, kind: str, n_in: int | None, n_out: int | None, init: bool = True
) -> bool:
    n_in = m.in_channels if n_in is None else n_in
    n_out = m.out_channels if n_out is None else n_out
    if (n_in, n_out) == (m.in_channels, m.out_channels):
        return False
    old_fan_in = m.weight[0].numel()
    m.in_channels, m.out_channels = n_in, n_out
    if kind == "depthwise":  # one input channel per group (the output may be a multiple)
        m.groups = n_in
    if isinstance(getattr(m, "scale", None), float) and hasattr(m, "gain"):
        # timm's ScaledStdConv2d: scale = gamma / sqrt(fan_in), set from the fan-in once
        m.scale *= math.sqrt(old_fan_in / (n_in // m.groups * math.prod(m.kernel_size)))
    shapes = {"weight": (n_out, n_in // m.groups, *m.kernel_size), "bias": (n_out,)}
    _swap(m, shapes, m.reset_parameters, init)
    return True


def _resize_linear(
    m: nn.Linear, kind: str, n_in: int | None, n_out: int | None, init: bool = True
) -> bool:
    n_in = m.in_features if n_in is None else n_in
    n_out = m.out_features if n_out is None else n_out
    if (n_in, n_out) == (m.in_features, m.out_features):
        return False
    m.in_features, m.out_features = n_in, n_out
    _swap(m, {"weight": (n_out, n_in), "bias": (n_out,)}, m.reset_parameters, init)
    return True


def _resize_norm(
    m: nn.Module, kind: str, n: int | None, _n_out: int | None, init: bool = True
) -> bool:
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if n is None or n == m.num_features:
            return False
        m.num_features = n
        if m.running_mean is not None:
            m.running_mean = torch.zeros(
                n, dtype=m.running_mean.dtype, device=m.running_mean.device
            )
            m.running_var = torch.ones(n, dtype=m.running_var.dtype, device=m.running_var.device)
    elif isinstance(m, nn.LayerNorm):
        if n is None or (n,) == tuple(m.normalized_shape):
            return False
        m.normalized_shape = (n,)
    else:
        if n is None or n == m.num_channels:
            return False
        m.num_channels = n
    _swap(m, {"weight": (n,), "bias": (n,)}, m.reset_parameters, init)
    return True


def _resize_loose(module: nn.Module, attr: str, dim: int, n: int, init: bool = True) -> None:
    old = getattr(module, attr)
    shape = list(old.shape)
    if not isinstance(module, (nn.Conv2d, nn.Linear, *_NORMS)):  # those keep their own counts
        _sync_width_attrs(module, shape[dim], n)
    shape[dim] = n
    value = _constant(old) if init else None
    with torch.no_grad():
        if not init:
            new = torch.empty(shape, dtype=old.dtype, device=old.device)
        elif value is not None:
            new = torch.full(shape, value, dtype=old.dtype, device=old.device)
        else:  # redraw from the values the family init produced
            pick = torch.randint(old.numel(), (math.prod(shape),), device=old.device)
            new = old.detach().reshape(-1)[pick].reshape(shape).clone()
    setattr(module, attr, nn.Parameter(new, requires_grad=old.requires_grad))


def _sync_width_attrs(module: nn.Module, old: int, new: int) -> None:
    """Set the plain attributes of ``module`` that hold its old channel count to the new one.

    Modules that own a loose per-channel parameter often keep its width or shape next to it and
    use that in ``forward`` (timm's ``Scale``: ``self.scale.view(self.shape)`` with
    ``shape = (dim, 1, 1)``). An int equal to the old width, and a shape tuple holding it once,
    follow the parameter; anything else stays. ``WidthSpace`` re-analyses a model realized at
    other widths before it accepts a model, so a module this rule misses is refused up front.
    """
    if old == new:
        return
    for key, value in list(vars(module).items()):
        if key.startswith("_") or isinstance(value, bool):
            continue
        if isinstance(value, int) and value == old:
            setattr(module, key, new)
        elif (
            isinstance(value, tuple | list)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and list(value).count(old) == 1
        ):
            swapped = [new if v == old else v for v in value]
            setattr(module, key, type(value)(swapped))


_RESIZERS = {
    "conv": _resize_conv,
    "depthwise": _resize_conv,
    "grouped": _resize_conv,
    "linear": _resize_linear,
    "norm": _resize_norm,
}


def _head_in(model: nn.Module) -> int | None:
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    return head.in_features if isinstance(head, nn.Linear) else None


def _head_attrs(model: nn.Module) -> dict[str, int]:
    """timm's head-size attributes that equal the classifier's input width."""
    n = _head_in(model)
    attrs = ("num_features", "head_hidden_size")
    return {a: n for a in attrs if n is not None and getattr(model, a, None) == n}


def _sync_head(model: nn.Module, before: dict[str, int]) -> None:
    """Keep those attributes in step with a resized classifier."""
    n = _head_in(model)
    for attr in before:
        setattr(model, attr, n)


# ----------------------------------------------------------------------------- family inits
def _init_efficientnet(model: nn.Module, kwargs: dict) -> None:
    from timm.models._efficientnet_builder import efficientnet_init_weights

    efficientnet_init_weights(model)


def _init_resnet(model: nn.Module, kwargs: dict) -> None:
    for m in model.modules():  # as timm.models.resnet.ResNet.init_weights
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if kwargs.get("zero_init_last", True):
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()


def _init_densenet(model: nn.Module, kwargs: dict) -> None:
    for m in model.modules():  # as timm.models.densenet.DenseNet.__init__
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, 0)


def _init_nfnet(model: nn.Module, kwargs: dict) -> None:
    for n, m in model.named_modules():  # as timm.models.nfnet.NormFreeNet.__init__
        if "fc" in n and isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _named_init(module: str, key: str, default: Any) -> Callable[[nn.Module, dict], None]:
    """The init of a timm family whose ``module._init_weights`` is applied to every submodule
    (``named_apply``), with the model's own ``key`` keyword (``default`` where it has none)."""

    def init(model: nn.Module, kwargs: dict) -> None:
        import importlib

        from timm.models._manipulate import named_apply

        weights = importlib.import_module(module)._init_weights
        named_apply(partial(weights, **{key: kwargs.get(key, default)}), model)

    return init


NAMED_INITS = (
    ("timm.models.regnet", "zero_init_last", True),
    ("timm.models.convnext", "head_init_scale", 1.0),
    ("timm.models.cspnet", "zero_init_last", True),
    ("timm.models.resnetv2", "zero_init_last", False),
    ("timm.models.rdnet", "head_init_scale", 1.0),
)
"""Families re-initialized by their module's ``_init_weights``: (module, keyword, timm's
default for it)."""

FAMILY_INITS = {
    "timm.models.efficientnet": _init_efficientnet,
    "timm.models.mobilenetv3": _init_efficientnet,
    "timm.models.resnet": _init_resnet,
    "timm.models.densenet": _init_densenet,
    "timm.models.nfnet": _init_nfnet,
    **{module: _named_init(module, key, default) for module, key, default in NAMED_INITS},
}


def family_init(model: nn.Module, kwargs: dict, family: str) -> None:
    """Re-run the init of ``family`` (a timm model module such as ``"timm.models.resnet"``).

    The family is named rather than read off the model because timm's ``features_only``
    wrappers hide the class they wrap. Unknown families keep PyTorch's default init.
    """
    init = FAMILY_INITS.get(family)
    if init is not None:
        init(model, kwargs)
