"""MkDocs hooks: the CLI reference rendered from widthsearch's argparse parsers at build time,
and the committed report pages copied into the site.

The CLI reference page (``reference/cli.md``) holds one marker, ``<!-- cli-reference -->``;
:func:`on_page_markdown` replaces it with every command and flag as the parser defines them, so
the page cannot drift from the code. ``tests/test_docs.py`` renders it too and checks that every
command and option appears.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import pathlib
from typing import Any

MARKER = "<!-- cli-reference -->"
ROOT = pathlib.Path(__file__).resolve().parents[2]
REPORT_SUFFIXES = (".html", ".png", ".csv", ".md")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _cell(text: str) -> str:
    return html.escape(" ".join(text.split())).replace("|", "\\|")


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        mv = action.metavar or action.dest.upper()
        metavar = " " + (" ".join(mv) if isinstance(mv, tuple) else str(mv))
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS, False):
        return ""
    if action.option_strings and action.default == []:
        return ""
    return f"`{action.default}`"


def render_command(name: str, parser: argparse.ArgumentParser, summary: str) -> str:
    """One command as Markdown: its summary, usage, description and a table of its arguments."""
    lines = [f"## `widthsearch {name}`", ""]
    if summary:
        lines += [_cell(summary)[0].upper() + _cell(summary)[1:] + ".", ""]
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines += ["```text", usage, "```", ""]
    if parser.description:
        lines += [html.escape(" ".join(parser.description.split())), ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        help_text = "" if action.help == argparse.SUPPRESS else (action.help or "")
        if "%(" in help_text:
            params = {**vars(action), "prog": parser.prog}
            params = {k: v for k, v in params.items() if v is not argparse.SUPPRESS}
            with contextlib.suppress(KeyError, TypeError, ValueError):
                help_text = help_text % params
        choices = ""
        if action.choices is not None and not isinstance(action.choices, dict):
            choices = ", ".join(f"`{c}`" for c in action.choices)
        rows.append((_flags(action), _cell(help_text), _default(action), choices))
    if rows:
        lines += ["| argument | meaning | default | choices |", "|---|---|---|---|"]
        lines += [f"| {f} | {h} | {d} | {c} |" for f, h, d, c in rows]
        lines.append("")
    return "\n".join(lines)


def render_cli() -> str:
    """Every command of ``widthsearch`` with every argument, from ``build_parser()``."""
    from widthsearch.cli import build_parser

    parser = build_parser()
    helps = _help_of(parser)
    top = parser.format_usage().removeprefix("usage: ").strip()
    parts = ["```text", top, "```", ""]
    names = _subcommands(parser)
    parts += [f"- [`{n}`](#widthsearch-{n}): {_cell(helps.get(n, ''))}" for n in names]
    parts.append("")
    for name, sub in _subcommands(parser).items():
        parts.append(render_command(name, sub, helps.get(name, "")))
    return "\n".join(parts)


API_MARKER = "<!-- api-reference -->"
STAGES = ("space", "solve", "hardware", "models", "search", "train", "verify", "report")


def _summary(obj: Any) -> str:
    """The first paragraph of an object's docstring, on one line ("" when it has none)."""
    try:
        doc = obj.docstring
    except Exception:  # an alias griffe cannot resolve (a name from outside the package)
        return ""
    return " ".join(doc.value.split("\n\n")[0].split()) if doc else ""


def render_api() -> str:
    """mkdocstrings directives for the face's public names (``widthsearch._PUBLIC``), then a
    table per stage face of the names it exports, with their one-line summaries."""
    import griffe

    import widthsearch

    parts = []
    for name, module in widthsearch._PUBLIC.items():
        parts += [f"::: {module}.{name}", ""]
    package = griffe.load("widthsearch", search_paths=[str(ROOT)], resolve_aliases=True)
    parts += ["## The stage faces", ""]
    for stage in STAGES:
        face = package[stage]
        parts += [f"### `widthsearch.{stage}`", "", _cell(_summary(face)), ""]
        parts += ["| name | kind | what it is |", "|---|---|---|"]
        for name in face.exports or []:
            member = face[name]
            try:
                kind = member.kind.value
            except Exception:
                kind = ""
            parts.append(f"| `{name}` | {kind} | {_cell(_summary(member))} |")
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render_cli())
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, render_api())
    return markdown


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add the committed report pages (``reports/``) to the site, so the docs can link them."""
    from mkdocs.structure.files import File

    reports = ROOT / "reports"
    for path in sorted(reports.rglob("*")):
        if path.is_file() and path.suffix in REPORT_SUFFIXES and path.name != "README.md":
            rel = path.relative_to(ROOT).as_posix()
            if path.suffix == ".md":
                continue  # front.md tables: the html page shows them
            files.append(
                File(rel, src_dir=str(ROOT), dest_dir=config["site_dir"], use_directory_urls=False)
            )
    return files
