"""``widthsearch front``: the Pareto front of a stored search study."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .search import format_front


def run(args: argparse.Namespace) -> int:
    from ..search import load_front

    info = load_front(args.study, args.storage)
    print(json.dumps(info, indent=2) if args.json else format_front(info))
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``front`` command."""
    from ..search import DEFAULT_STORAGE

    p = sub.add_parser(
        "front",
        help="print the Pareto front of a search study",
        description="Print the Pareto front (max log SynExp, min params, min MACs) of a study "
        "that search stored, with each trial's constraint mix and widths.",
    )
    p.add_argument("study", help="study name (the model name unless --study was given)")
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument("--json", action="store_true", help="print the front as JSON")
    p.set_defaults(func=run)
