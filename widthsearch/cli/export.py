"""``widthsearch export``: a Python module with a timm entrypoint for a width file."""

from __future__ import annotations

import argparse
from typing import Any

from widthsearch.models.export import check_module_path, export


def run(args: argparse.Namespace) -> int:

    module = check_module_path(args.py).stem
    name = export(args.widths, args.py, args.name)
    if not name:  # a model of the user's own
        print(f"wrote {args.py}: after `import {module}`, {module}.create_model() builds the model")
        return 0
    print(f'wrote {args.py}: after `import {module}`, timm.create_model("{name}") builds the model')
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``export`` command."""
    p = sub.add_parser(
        "export",
        help="write a Python module with a timm entrypoint for a width file",
        description="Write a module (needing only torch and timm) that registers a timm model "
        "at the widths of WIDTHS.json: after importing it, timm.create_model(NAME) builds it, "
        "with any timm kwargs (num_classes, features_only, ...). For a model of your own "
        "(FILE.py:NAME), the module defines create_model(**kwargs), which imports your factory "
        "and rebuilds its model at the new widths.",
    )
    p.add_argument("widths", metavar="WIDTHS.json", help="a width file from reconfig -o")
    p.add_argument("--py", required=True, metavar="MODULE.py", help="the module to write")
    p.add_argument("--name", help="the timm model name to register (default MODEL_ws)")
    p.set_defaults(func=run)
