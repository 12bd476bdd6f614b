"""``widthsearch`` command line: a thin layer over the Python API.

torch and timm take seconds to import, so they are imported inside the commands, never at the
top: ``widthsearch --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .errors import WidthSearchError


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


def _fmt_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3f}{unit}"
    return str(n)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> str:
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
        f"{info['model']} at {c}x{h}x{w}: {len(groups)} channel groups ({free} free), "
        f"{len(info['layers'])} layers",
        "",
        _table(header, rows, right={0, 1, 3, 5, 6, 7}),
        "",
        f"params {info['params']:,} ({_fmt_count(info['params'])})   "
        f"MACs {info['macs']:,} ({_fmt_count(info['macs'])}, per image)",
        "params% / MACs%: share of the model's params / MACs that grow with the group's width "
        "(a conv grows with its input and output groups, so shares add up to more than 100).",
    ]
    if info["constant_params"]:
        lines.append(f"width-independent parameters: {', '.join(info['constant_params'])}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .space import WidthSpace

    space = WidthSpace.from_timm(args.model, input_size=args.input_size)
    info = space.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_space(info, verbose=args.verbose))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="widthsearch",
        description="Search the channel widths of timm CNNs at initialization.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "inspect",
        help="show the channel groups, layers and exact costs of a timm model",
        description="Analyse a timm model (random init, no download) and print its width space: "
        "the coupled channel groups, their base widths, and exact params and MACs.",
    )
    p.add_argument("model", help="timm model name, e.g. efficientnet_b0")
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        default=(3, 224, 224),
        metavar="C,H,W",
        help="input size for MACs and spatial sizes (default 3,224,224)",
    )
    p.add_argument("--json", action="store_true", help="print the width space as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="list every group's layers")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WidthSearchError as exc:
        print(f"widthsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("widthsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
