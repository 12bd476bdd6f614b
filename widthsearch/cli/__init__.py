"""``widthsearch`` command line: a thin layer over the Python API, one module per command.

torch, timm and cvxpy take seconds to import, so the command modules import them inside the
command, never at the top: ``widthsearch --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from widthsearch._version import __version__
from widthsearch.errors import WidthSearchError, WidthSearchWarning
from widthsearch.solve.costs import COST_KINDS

from . import bench, export, front, inspect, profile, reconfig, report, run, search, verify
from ._args import budget_flags

OPTION_FLAGS = {
    "min_width": "--min-width",
    "max_width": "--max-width",
    "divisor": "--divisor",
    "mode": "--mode",
    "choices": "--choices",
    "top": "--top",
    **{kind.name: kind.flag for kind in COST_KINDS.values()},
    "budget": f"a budget ({budget_flags()})",
    "replace": "--replace",
    "output": "another folder (-o DIR)",
    "output_key": "--output KEY ([verify] output in a study file)",
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


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that an unknown option is refused by its command's
    parser (its usage, not the top level's) with the closest option it has: ``--parms`` gets
    "did you mean --params?" (argparse's own ``suggest_on_error`` is Python 3.14's)."""
    args, extras = parser.parse_known_args(argv)
    if not extras:
        return args
    command = _subparser(parser, args.command)
    message = f"unrecognized arguments: {' '.join(extras)}"
    options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
    for extra in extras:
        given = extra.split("=", 1)[0]
        if given.startswith("-") and given not in options:
            close = difflib.get_close_matches(given, options, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean {close[0]}?"
                break
    command.error(message)  # exits 2


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("build_parser adds the commands")  # pragma: no cover


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Every warning as one ``widthsearch: warning:`` line on stderr, not Python's two lines
    with a source line: ours as their message; another package's with its kind and place."""
    lines = str(message).strip().splitlines()
    text = lines[0] if lines else category.__name__
    if not issubclass(category, WidthSearchWarning):
        text += f" ({category.__name__} from {os.path.basename(filename)}:{lineno})"
    with contextlib.suppress(OSError, ValueError):  # stderr closed
        print(f"widthsearch: warning: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (0 done, 2 a refused input, 130 Ctrl-C).

    Errors a user can act on (:class:`~widthsearch.errors.WidthSearchError`) and warnings come
    out as one line each. A closed stdout (``widthsearch front ... | head -1``: the reader has
    what it wants) ends the command quietly with status 0.
    """
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args = _parse(build_parser(), argv)
            code = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
    except BrokenPipeError:  # `widthsearch front ... | head -1`: the reader has enough
        _discard_stdout()
        return 0
    except WidthSearchError as exc:
        _say(f"widthsearch: error: {exc.worded(OPTION_FLAGS)}")
        return 2
    except KeyboardInterrupt as exc:  # SearchInterrupted, VerifyInterrupted say what was kept
        _say(f"widthsearch: interrupted{f': {exc}' if str(exc) else ''}")
        return 130


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr closed too: the exit status says it
        print(line, file=sys.stderr, flush=True)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again (the
    recipe of the Python docs for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (captured output)
        pass


__all__ = ["COMMANDS", "OPTION_FLAGS", "build_parser", "main"]
