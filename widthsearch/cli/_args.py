"""Argument types, model arguments, budget and cost-model options, and plain-text tables
shared by the commands: every option that several commands take is defined here once."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from widthsearch.errors import GridError, WidthSearchError
from widthsearch.hardware import resolve_latency_model
from widthsearch.hardware.timing import current_device
from widthsearch.solve import solved_widths
from widthsearch.solve.costs import COST_KINDS, OPTIONS, CostSettings, cost_models
from widthsearch.solve.lattice import TIME_LIMIT
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from widthsearch.space.choices import GridSpec
from widthsearch.space.source import ModelRef, parse_model_kwargs
from widthsearch.train.output import describe

MODEL_HELP = (
    "a timm model name (efficientnet_b0), or your own: path/to/file.py:NAME or "
    "package.module:NAME, NAME a class or function returning an nn.Module"
)
DEFAULT_SIDE = 224
"""The image side of the default input size (``C,224,224``)."""


def parse_input_size(text: str) -> tuple[int, int, int]:
    """``"3,224,224"`` -> ``(3, 224, 224)``; a single number ``S`` means ``3,S,S``."""
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = [3, parts[0], parts[0]]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 3,224,224), got '{text}'")
    return parts[0], parts[1], parts[2]


def fmt_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3f}{unit}"
    return str(n)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return int(text)


def nonnegative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got '{text}'")
    return int(text)


class _InputSize(argparse.Action):
    """``--input-size`` as ``C,H,W``, ``CxHxW``, ``C H W`` (timm's spelling) or ``S`` (a square
    image whose channels follow ``--in-chans``, else 3). Stores ``(C or None, H, W)``."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        text = " ".join(values)
        parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
        if not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) not in (1, 3):
            hint = (
                "; give the model name before --input-size"
                if len(parts) > 1 and not parts[-1].isdigit()
                else ""
            )
            raise argparse.ArgumentError(
                self, f"expected C,H,W, C H W or a side S (e.g. 3,224,224), got '{text}'{hint}"
            )
        sizes = [int(p) for p in parts]
        namespace.input_size = (None, sizes[0], sizes[0]) if len(sizes) == 1 else tuple(sizes)


def add_input_size(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--input-size C,H,W`` (or ``C H W``, or ``S``); read it with :func:`model_setting`."""
    p.add_argument(
        "--input-size",
        nargs="+",
        action=_InputSize,
        default=None,
        metavar="SIZE",
        help=help
        or f"input size for MACs and spatial sizes: C,H,W or C H W (default 3,{DEFAULT_SIDE},"
        f"{DEFAULT_SIDE}; a single S means C,S,S)",
    )


def add_timm_kwargs(p: argparse.ArgumentParser) -> None:
    """``--num-classes N`` and ``--in-chans N``, passed to timm; read them with
    :func:`model_setting` (or :func:`timm_kwargs`)."""
    p.add_argument(
        "--num-classes",
        type=positive_int,
        metavar="N",
        help="classes of the model's head, as timm's num_classes (default: the model's, 1000 "
        "for ImageNet models); costs and widths are for this head",
    )
    p.add_argument(
        "--in-chans",
        type=positive_int,
        metavar="N",
        help="input image channels, as timm's in_chans (default: --input-size's C, else 3)",
    )
    add_model_kwargs(p)


def add_model_kwargs(p: argparse.ArgumentParser) -> None:
    """``--model-kwargs JSON``: keyword arguments for the model's factory (or timm)."""
    p.add_argument(
        "--model-kwargs",
        metavar="JSON",
        help="keyword arguments for MODEL, a JSON object, e.g. "
        """'{"widths": [64, 64, 64], "num_classes": 10}' (passed to your class or function, """
        "or to timm.create_model; --num-classes and --in-chans go on top)",
    )


def timm_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The model kwargs of :func:`add_timm_kwargs`'s flags that were given: ``--model-kwargs``,
    with ``--num-classes`` and ``--in-chans`` on top.

    Raises:
        ModelRefError: ``--model-kwargs`` is not a JSON object.
    """
    kwargs = parse_model_kwargs(getattr(args, "model_kwargs", None))
    if getattr(args, "num_classes", None) is not None:
        kwargs["num_classes"] = args.num_classes
    if getattr(args, "in_chans", None) is not None:
        kwargs["in_chans"] = args.in_chans
    return kwargs


def model_setting(args: argparse.Namespace) -> tuple[tuple[int, int, int], dict[str, Any]]:
    """The input size and timm kwargs of ``--input-size``, ``--num-classes``, ``--in-chans``.

    As in timm's ``train.py``, the input channels are ``--in-chans`` when given, else the C of
    ``--input-size``; ``in_chans`` goes to timm only when it is not timm's default 3, so a
    3-channel model keeps the width space (and the study) it always had. A model of your own
    gets ``in_chans`` only from ``--in-chans`` (or ``--model-kwargs``): its factory may not
    take one.

    Raises:
        WidthSearchError: ``--in-chans`` and the C of ``--input-size`` disagree.
    """
    kwargs = timm_kwargs(args)
    size = getattr(args, "input_size", None) or (None, DEFAULT_SIDE, DEFAULT_SIDE)
    c, h, w = size
    chans = kwargs.get("in_chans")
    if chans is not None and c is not None and c != chans:
        raise WidthSearchError(
            f"--input-size {c},{h},{w} has {c} channels but --in-chans is {chans}; give one of "
            "them, or make them agree"
        )
    chans = chans or c or 3
    if not is_timm(getattr(args, "model", None)):
        return (chans, h, w), kwargs
    kwargs.pop("in_chans", None)
    if chans != 3:
        kwargs["in_chans"] = chans
    return (chans, h, w), kwargs


def space_notes(space: Any, shown: int = 6) -> list[str]:
    """What ``inspect`` and ``reconfig`` say of a width space beyond its groups: the layers
    that run only in training (auxiliary heads), and what ``verify`` trains on when the model
    returns more than a tensor (:mod:`widthsearch.train.output`)."""
    notes = []
    train_only = [lay.name for lay in space.layers if lay.train_only]
    if train_only:
        more = f", ... ({len(train_only)} in all)" if len(train_only) > shown else ""
        notes.append(
            f"train-only layers (resized with the rest; their params count, their MACs do not): "
            f"{', '.join(train_only[:shown])}{more}"
        )
    outputs = space.outputs
    if outputs and not all(_is_tensor(out) for out in outputs.values()):
        notes.append(
            f"verify trains on {describe(outputs)}; --output KEY picks another part (the "
            "rule: docs/guides/own-model.md, 'What training reads')"
        )
    return notes


def _is_tensor(out: Any) -> bool:
    import torch

    return isinstance(out, torch.Tensor)


def is_timm(model: str | None) -> bool:
    """True for a timm name (no ``FILE.py:NAME`` or ``module:NAME`` reference)."""
    return model is None or ModelRef.parse(model).is_timm


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model name, ``--input-size``, ``--num-classes`` and ``--in-chans``."""
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_input_size(p)
    add_timm_kwargs(p)


def dest(flag: str) -> str:
    """The attribute argparse stores ``flag`` under (``--same-flops`` -> ``same_flops``)."""
    return flag.lstrip("-").replace("-", "_")


def add_budget_args(p: argparse.ArgumentParser) -> None:
    """Every cost kind's budget flags (:data:`~widthsearch.solve.costs.COST_KINDS`): the
    budget (``--macs R``), its other units (``--flops R``) and the base's own (``--same-flops``);
    read them with :func:`budget_texts`."""
    for kind in COST_KINDS.values():
        if kind.same_flag:
            p.add_argument(
                kind.same_flag, action="store_true", help=f"{kind.label} at most the base's"
            )
        p.add_argument(kind.flag, metavar="R", help=kind.help)
        for flag, _, help in kind.aliases:
            p.add_argument(flag, metavar="R", help=help)


def budget_flags() -> str:
    """Every budget flag, for "give a budget (...)"."""
    flags = []
    for kind in COST_KINDS.values():
        flags += [f"{kind.flag} R", *(f"{a} R" for a, _, _ in kind.aliases)]
        flags += [kind.same_flag] if kind.same_flag else []
    return ", ".join(flags[:-1]) + f" or {flags[-1]}"


def budget_texts(args: argparse.Namespace) -> dict[str, tuple[str, float]]:
    """The budgets on the command line: cost name -> (text, units of the kind per unit of its
    counts); a same-as-base flag is the ratio ``"1"``.

    Raises:
        WidthSearchError: two budgets for one cost, or a text that is no budget.
    """
    out: dict[str, tuple[str, float]] = {}
    for kind in COST_KINDS.values():
        given = [(kind.flag, 1.0)] + [(a, per) for a, per, _ in kind.aliases]
        values = [(f, per, getattr(args, dest(f), None)) for f, per in given]
        values = [v for v in values if v[2] is not None]
        same = bool(kind.same_flag and getattr(args, dest(kind.same_flag), False))
        names = "/".join(f for f, _ in reversed(given))
        if same and values:
            raise WidthSearchError(f"give {kind.same_flag} or {names}, not both")
        if len(values) > 1:
            raise WidthSearchError(f"give {' or '.join(f for f, _, _ in values)}, not both")
        if same:
            out[kind.name] = ("1", 1.0)
        elif values:
            _, per, text = values[0]
            kind.parse(str(text), 1, per=per)  # syntax and range, before any model is analysed
            out[kind.name] = (str(text), per)
    return out


def add_cost_args(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """The settings of the cost models (:data:`~widthsearch.solve.costs.OPTIONS`: latency
    profile, device, threads, batch size, activation bytes); read them with
    :func:`cost_settings`. ``defaults=False`` leaves every one None when not given (a study
    file's then count)."""
    base = CostSettings()
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"help": option.help}
        if option.kind == "int":
            kwargs["type"] = positive_int
        if option.choices is not None:
            kwargs["choices"] = option.choices
        if option.kind == "path":
            kwargs["metavar"] = "PROFILE.json"
        if defaults and getattr(base, option.field) is not None:
            kwargs["default"] = getattr(base, option.field)
        p.add_argument(option.flag, **kwargs)


def cost_settings(args: argparse.Namespace, base: CostSettings | None = None) -> CostSettings:
    """The :class:`~widthsearch.solve.costs.CostSettings` of :func:`add_cost_args`'s flags,
    each given one replacing ``base``'s."""
    base = base or CostSettings()
    given = {o.field: getattr(args, o.field, None) for o in OPTIONS}
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def add_budget_range_args(p: argparse.ArgumentParser, ranges: Any) -> None:
    """Every cost kind's budget range of a search (``--macs LO,HI``, ``none``: unconstrained),
    each replacing the study file's key; ``ranges`` gives the defaults shown."""
    for kind in COST_KINDS.values():
        r = ranges.budget(kind.name)
        default = f"default {r[0]:g},{r[1]:g}" if r else "default none"
        p.add_argument(
            kind.flag,
            metavar="LO,HI",
            help=f"{kind.label} budget range, ratios of the base's ({default}; one number "
            "fixes it; none: unconstrained)",
        )


@dataclass(frozen=True)
class Models:
    """The cost models a command built, and where its latency model came from."""

    models: dict[str, Any]
    note: str = ""


def check_device(args: argparse.Namespace, *, need: bool) -> None:
    """The device and its settings make sense (before any model is analysed), where a
    latency model is ``need``-ed."""
    if need:
        current_device(
            args.device, threads=args.threads, batch_size=args.batch_size or 1, dtype="float32"
        )


def models_for(
    args: argparse.Namespace, space: Any, names: set[str], *, quiet: bool = False
) -> Models:
    """The models of the cost kinds ``names`` for ``space`` with :func:`add_cost_args`'s
    settings: the latency model from ``--profile`` or a cached quick profile (its progress on
    stderr unless ``quiet``), the others built (:func:`~widthsearch.solve.costs.cost_models`)."""
    settings = cost_settings(args)
    built: dict[str, Any] = {}
    note = ""
    if "latency" in names:

        def progress(message: str) -> None:
            if not quiet:
                print(message, file=sys.stderr, flush=True)

        resolved = resolve_latency_model(
            space,
            profile=settings.profile,
            device=settings.device,
            threads=settings.threads,
            batch_size=settings.batch_size,
            solved_widths=solved_widths,
            progress=progress,
        )
        built["latency"], note = resolved.model, resolved.note
    return Models(cost_models(space, sorted(names), settings, built), note)


def absolute_budgets(
    space: Any, texts: dict[str, tuple[str, float]], models: dict[str, Any]
) -> dict[str, float]:
    """The command line's budgets (:func:`budget_texts`) as absolute figures: ratios of the
    base's value (the space's params and MACs, or the cost model's)."""
    out = {}
    for name, (text, per) in texts.items():
        kind = COST_KINDS[name]
        own = {"params": space.params(), "macs": space.macs()}
        base = own[name] if name in own else models[name](space.base_widths)
        out[name] = kind.parse(text, base, per=per)
    return out


def add_objective_args(
    p: argparse.ArgumentParser, *, default: str | None = DEFAULT_OBJECTIVE
) -> None:
    """``--objective NAME`` (every registered objective) and ``--time-limit S`` (the lattice
    search's seconds); ``default=None`` leaves them None when not given (a study's count)."""
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default=default,
        help="what the widths maximize: "
        + "; ".join(f"{o.name}: {o.summary}" for o in OBJECTIVES.values())
        + f" (default {DEFAULT_OBJECTIVE})",
    )
    p.add_argument(
        "--time-limit",
        type=positive_float,
        metavar="S",
        default=None if default is None else TIME_LIMIT,
        help=f"seconds the exact search of a width grid may take before it returns its best "
        f"point and certified gap (default {TIME_LIMIT:g})",
    )


def add_grid_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--choices LIST`` or ``--choices GLOB=LIST`` (repeatable, as a study file's ``[grid]``
    and ``[grid.groups]``) and ``--tie GLOB[,GLOB...]`` (repeatable); read them with
    :func:`grid_spec`. ``what`` says what the grid does for the command."""
    p.add_argument(
        "--choices",
        action="append",
        metavar="[GLOB=]LIST",
        help=f"{what}: multipliers of each group's base width (0.25x,0.5x,0.75x,1x; each "
        "round(m*base)) or widths (8,16,24,32; each group keeps those within its bounds); "
        "GLOB=LIST gives the groups whose producers match GLOB their own list (first match "
        "wins); repeatable",
    )
    p.add_argument(
        "--tie",
        action="append",
        metavar="GLOB[,GLOB...]",
        help="the groups whose producers (see inspect) match these globs share one width; "
        "repeatable",
    )


def grid_spec(args: argparse.Namespace) -> GridSpec:
    """The :class:`~widthsearch.space.choices.GridSpec` of :func:`add_grid_args`'s flags.

    Raises:
        GridError: two lists for every group, an empty glob, or a list that is no grid.
    """
    default: str | None = None
    groups: dict[str, str] = {}
    for text in getattr(args, "choices", None) or ():
        glob, sep, values = text.partition("=")
        if not sep:
            if default is not None:
                raise GridError(
                    f"--choices {default} and --choices {text} both set every group's grid; give "
                    "one, and GLOB=LIST for the groups that differ"
                )
            default = text
        elif not glob.strip():
            raise GridError(f"--choices '{text}' names no group before '='; give GLOB=LIST")
        else:
            groups[glob.strip()] = values
    return GridSpec.parse(default, getattr(args, "tie", None) or (), groups)


def add_quick_check_args(p: argparse.ArgumentParser) -> None:
    """``--max-steps`` and ``--train-subset``: quick checks, kept apart from full runs."""
    p.add_argument(
        "--max-steps",
        type=positive_int,
        metavar="N",
        help="quick check: stop each run after N optimizer steps (the schedule fits them)",
    )
    p.add_argument(
        "--train-subset",
        type=positive_int,
        metavar="N",
        help="quick check: train on a fixed subset of N training images (validation: all)",
    )
