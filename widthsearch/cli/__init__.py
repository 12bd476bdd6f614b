"""``widthsearch`` command line: a thin layer over the Python API, one module per command.

torch, timm and cvxpy take seconds to import, so the command modules import them inside the
command, never at the top: ``widthsearch --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from widthsearch._version import __version__
from widthsearch.errors import WidthSearchError, WidthSearchWarning

from . import bench, export, front, inspect, profile, reconfig, report, run, search, verify

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


def _one_line_warnings(show):
    """``warnings.showwarning`` that prints our own warnings as one line
    (``widthsearch: warning: ...``) and hands any other to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, WidthSearchWarning):
            print(f"widthsearch: warning: {message}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `widthsearch front ... | head -1`: the reader has enough
        _discard_stdout()
        return 1
    except WidthSearchError as exc:
        print(f"widthsearch: error: {exc}", file=sys.stderr)
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


__all__ = ["COMMANDS", "build_parser", "main"]
