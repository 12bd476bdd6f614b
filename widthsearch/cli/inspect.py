"""``widthsearch inspect``: the width space of a model (groups, layers, exact costs)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from widthsearch.solve.program import DEFAULT_MAX_WIDTH
from widthsearch.space.width_space import WidthSpace

from ._args import (
    add_grid_args,
    add_model_args,
    fmt_count,
    grid_spec,
    model_setting,
    space_notes,
    table,
)


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
    lattice = info.get("lattice")
    if lattice:
        header += ["widths", "tie"]
        for row, g in zip(rows, groups, strict=True):
            row += [
                "" if g["fixed"] else ",".join(map(str, lattice["grid"][g["id"]])),
                lattice["tie_of"].get(str(g["id"]), ""),
            ]
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
    if lattice:
        lines += ["", f"grid: {lattice['description']}"]
    return "\n".join(lines)


def lattice_info(lattice: Any) -> dict[str, Any]:
    """A :class:`~widthsearch.space.choices.WidthLattice` for ``inspect --json``: each group's
    widths, the tied sets (``tie_of``: group id -> tie label ``t1``, ``t2``, ...) and the size."""
    tied = [c for c in lattice.classes if len(c) > 1]
    return {
        "description": lattice.describe(),
        "spec": lattice.spec.to_dict(),
        "points": lattice.size,
        "variables": len(lattice.classes),
        "grid": [list(g) for g in lattice.grid],
        "ties": [list(c) for c in tied],
        "tie_of": {str(g): f"t{i + 1}" for i, c in enumerate(tied) for g in c},
    }


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
    grid = grid_spec(args)
    if not grid.empty:
        lattice = grid.resolve(
            space, divisor=args.divisor, min_width=args.min_width, max_width=DEFAULT_MAX_WIDTH
        )
        info["lattice"] = lattice_info(lattice)
    notes = space_notes(space)
    if args.json:
        print(json.dumps({**info, "notes": notes} if notes else info, indent=2))
    else:
        print(format_space(info, verbose=args.verbose))
        for note in notes:
            print(f"note: {note}")
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
    add_grid_args(p, "show each group's widths on this grid (at --max-width 2 for widths)")
    p.add_argument(
        "--divisor",
        type=int,
        default=8,
        metavar="N",
        help="with --tie and no --choices: the grid of multiples of N (default 8)",
    )
    p.add_argument(
        "--min-width",
        type=float,
        default=0.1,
        metavar="X",
        help="with --tie and no --choices: the smallest multiplier (default 0.1)",
    )
    p.set_defaults(func=run)
