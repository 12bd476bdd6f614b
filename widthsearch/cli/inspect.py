"""``widthsearch inspect``: the width space of a model (groups, layers, exact costs)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from widthsearch.space.width_space import WidthSpace

from ._args import add_model_args, fmt_count, model_setting, table


def model_label(info: dict[str, Any]) -> str:
    """The model name, with the timm kwargs it was built with: ``resnet18 (num_classes=10)``."""
    kwargs = info.get("timm_kwargs") or {}
    extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{info['model']} ({extra})" if extra else info["model"]


def format_space(info: dict[str, Any], *, verbose: bool = False) -> str:
    """The ``inspect`` report of a :meth:`WidthSpace.to_dict` result."""
    groups = info["groups"]
    free = sum(not g["fixed"] for g in groups)
    c, h, w = info["input_size"]
    rows = []
    for g in groups:
        members = ", ".join(g["layers"]) if verbose else f"{len(g['layers'])}"
        rows.append(
            [
                g["id"],
                g["width"],
                "fixed" if g["fixed"] else "",
                g["multiple_of"] if g["multiple_of"] > 1 else "",
                g["producer"],
                members,
                f"{100 * g['params_share']:.1f}",
                f"{100 * g['macs_share']:.1f}",
            ]
        )
    header = ["group", "width", "fixed", "mult", "producer", "layers", "params%", "MACs%"]
    lines = [
        f"{model_label(info)} at {c}x{h}x{w}: {len(groups)} channel groups ({free} free), "
        f"{len(info['layers'])} layers",
        "",
        table(header, rows, right={0, 1, 3, 5, 6, 7}),
        "",
        f"params {info['params']:,} ({fmt_count(info['params'])})   "
        f"MACs {info['macs']:,} ({fmt_count(info['macs'])}, per image)",
        "params% / MACs%: share of the model's params / MACs that grow with the group's width "
        "(a conv grows with its input and output groups, so shares add up to more than 100).",
    ]
    if info["constant_params"]:
        lines.append(f"width-independent parameters: {', '.join(info['constant_params'])}")
    lines += _restrictions(info, verbose)
    return "\n".join(lines)


def _restrictions(info: dict[str, Any], verbose: bool, shown: int = 8) -> list[str]:
    """Groups that splits tie or fix, and the module attributes that hold split sizes."""
    noted = [g for g in info["groups"] if g.get("note")]
    attrs = info.get("size_attrs") or []
    lines = []
    if noted:
        lines += ["", "groups restricted by splits or constants (a tied group is one chunk):"]
        for g in noted if verbose else noted[:shown]:
            lines.append(f"  group {g['id']} ({g['width']}): {g['note']}")
        if not verbose and len(noted) > shown:
            lines.append(f"  ... {len(noted) - shown} more (-v lists all)")
    if attrs:
        names = ", ".join(a["name"] for a in (attrs if verbose else attrs[:3]))
        more = "" if verbose or len(attrs) <= 3 else f", ... ({len(attrs)} in all)"
        lines += ["", f"split sizes set on realization: {names}{more}"]
    return lines


def run(args: argparse.Namespace) -> int:

    input_size, kwargs = model_setting(args)
    space = WidthSpace.from_ref(args.model, input_size=input_size, **kwargs)
    info = space.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_space(info, verbose=args.verbose))
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``inspect`` command."""
    p = sub.add_parser(
        "inspect",
        help="show the channel groups, layers and exact costs of a model",
        description="Analyse a timm model or your own (random init, no download) and print its "
        "width space: "
        "the coupled channel groups, their base widths, and exact params and MACs.",
    )
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the width space as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="list every group's layers")
    p.set_defaults(func=run)
