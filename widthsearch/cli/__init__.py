"""``widthsearch`` command line: a thin layer over the Python API, one module per command.

torch, timm and cvxpy take seconds to import, so the command modules import them inside the
command, never at the top: ``widthsearch --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from widthsearch._version import __version__
from widthsearch.errors import WidthSearchError

from . import bench, export, front, inspect, profile, reconfig, report, run, search, verify

OPTION_FLAGS = {
    "min_width": "--min-width",
    "max_width": "--max-width",
    "divisor": "--divisor",
    "mode": "--mode",
    "params": "--params",
    "macs": "--macs",
    "latency": "--latency",
    "memory": "--memory",
    "budget": "a budget (--params R, --flops R, --macs R, --same-params, --same-flops, "
    "--latency R, --same-latency or --memory R)",
    "replace": "--replace",
    "output": "another folder (-o DIR)",
}
"""How the options an error names (:meth:`WidthSearchError.worded`) read on the command line."""

COMMANDS = (inspect, reconfig, export, search, front, verify, report, run, profile, bench)
"""Command modules in the order ``--help`` lists them; each has ``add_parser`` and ``run``."""


def version_line() -> str:
    """``widthsearch X (timm Y, torch Z)``, from package metadata: no import of torch or timm."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"widthsearch {__version__} (timm {installed('timm')}, torch {installed('torch')})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="widthsearch",
        description="Search the channel widths of timm CNNs at initialization.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `widthsearch front ... | head -1`: the reader has enough
        _discard_stdout()
        return 1
    except WidthSearchError as exc:
        print(f"widthsearch: error: {exc.worded(OPTION_FLAGS)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SearchInterrupted says what was kept
        print(f"widthsearch: interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again (the
    recipe of the Python docs for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (captured output)
        pass


__all__ = ["COMMANDS", "OPTION_FLAGS", "build_parser", "main"]
