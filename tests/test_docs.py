"""The examples in README.md and docs/ cannot rot: they are run, or their commands are parsed.

The convention (docs/reference/examples.md):
- A fenced ``bash`` block's ``widthsearch`` lines (``uv run widthsearch ...``; ``\\`` continues a
  line) are commands. A ``text`` block's ``$ uv run widthsearch ...`` lines are transcripts.
  Every command is parsed by the real parser (``build_parser().parse_args``), nothing run.
- A block after ``<!-- run -->`` is run: its commands through ``widthsearch.cli.main`` in one
  scratch folder per page, in page order, python blocks by ``exec`` there. Other python blocks
  are compiled. ``<!-- file: NAME.py -->`` writes the block to ``NAME.py`` in that folder first.
- ``<!-- pending: BRANCH -->`` marks a block whose flags another branch adds; it is parsed all
  the same, and skipped with that reason only while the parser does not know them yet.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pathlib
import re
import shlex
import sys
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[a-z]*)\s*$")
MARKER = re.compile(
    r"<!--\s*(run|slow|file:\s*(?P<file>[\w.]+)|pending:\s*(?P<pending>[\w,-]+))\s*-->"
)
# Placeholders a reader replaces: data paths, servers, the ellipsis of an elided flag list.
PLACEHOLDER = re.compile(r"(^|\s)\.\.\.(\s|$)")


@dataclass(frozen=True)
class Block:
    page: pathlib.Path
    line: int
    lang: str
    text: str
    markers: tuple[str, ...]
    file: str | None = None
    pending: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: pathlib.Path) -> list[Block]:
    """Every fenced block of a Markdown page, with the markers on the lines just above it."""
    lines = page.read_text().split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group("lang"):
            i += 1
            continue
        indent, lang, start = m.group("indent"), m.group("lang"), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        markers, file, pending = [], None, None
        j = start - 1
        while j >= 0 and MARKER.fullmatch(lines[j].strip()):  # marker lines right above
            mm = MARKER.fullmatch(lines[j].strip())
            assert mm
            markers.append(mm.group(1).split(":")[0])
            file = file or mm.group("file")
            pending = pending or mm.group("pending")
            j -= 1
        found.append(Block(page, start + 1, lang, "\n".join(body), tuple(markers), file, pending))
        i += 1
    return found


def commands(block: Block) -> list[list[str]]:
    """The widthsearch commands of a block, as argument lists after ``widthsearch``."""
    text = re.sub(r"\\\n\s*", " ", block.text)
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        if block.lang == "text":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        elif block.lang != "bash":
            return []
        line = line.split(" #", 1)[0].strip() if " #" in line else line
        words = shlex.split(line, comments=True)
        if words[:2] == ["uv", "run"]:
            words = words[2:]
        if not words or words[0] != "widthsearch":
            continue  # uv sync, pytest, python scripts: not widthsearch's parser
        out.append(words[1:])
    return out


ALL = [b for page in PAGES for b in blocks(page)]
PARSED = [b for b in ALL if commands(b)]
RUN = [b for b in ALL if "run" in b.markers or b.file]
COMPILED = [b for b in ALL if b.lang == "python" and "run" not in b.markers and not b.file]


def parse(argv: list[str]) -> argparse.Namespace:
    from widthsearch.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(argv)
        except SystemExit as exc:
            message = err.getvalue().strip()
            raise AssertionError(f"widthsearch {shlex.join(argv)}: {message}") from exc


def test_the_pages_have_examples_of_every_kind() -> None:
    assert len(PARSED) >= 12, [b.id for b in PARSED]
    assert any(b.page.name == "README.md" for b in RUN)
    assert COMPILED


@pytest.mark.parametrize("block", PARSED, ids=lambda b: b.id)
def test_every_command_in_the_docs_parses(block: Block) -> None:
    for argv in commands(block):
        if any(PLACEHOLDER.search(w) or w == "..." for w in argv):
            argv = [w for w in argv if w != "..."]
            if not argv or argv[0].startswith("-"):
                continue
        try:
            args = parse(argv)
        except AssertionError as exc:
            if block.pending:
                pytest.skip(f"{block.id}: waits for branch {block.pending}: {exc}")
            raise
        assert args.command == argv[0]


@pytest.mark.parametrize("block", COMPILED, ids=lambda b: b.id)
def test_every_python_example_compiles(block: Block) -> None:
    compile(block.text, block.id, "exec")


def _run_page(page: pathlib.Path, folder: pathlib.Path) -> None:
    from widthsearch.cli import main

    scope: dict[str, object] = {"__name__": "__docs__"}
    for block in (b for b in RUN if b.page == page):
        if block.file:
            (folder / block.file).write_text(block.text + "\n")
            continue
        if block.lang == "python":
            exec(compile(block.text, block.id, "exec"), scope)
            continue
        for argv in commands(block):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(argv)
            assert code == 0, f"{block.id}: widthsearch {shlex.join(argv)} exited {code}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "page",
    sorted({b.page for b in RUN if "run" in b.markers}),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_the_quick_examples_run(
    page: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = set(sys.modules)
    try:
        _run_page(page, tmp_path)
    finally:
        for name in set(sys.modules) - before:
            if getattr(sys.modules[name], "__file__", "") and str(tmp_path) in str(
                sys.modules[name].__file__
            ):
                del sys.modules[name]  # the example's generated modules, e.g. my_models


def test_the_cli_reference_names_every_command_and_flag() -> None:
    """The hook that renders docs/reference/cli.md misses no command or option."""
    import importlib.util

    from widthsearch.cli import build_parser

    path = ROOT / "docs/hooks/cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", path)
    assert spec and spec.loader
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    text = hook.render_cli()
    subs = hook._subcommands(build_parser())
    assert len(subs) >= 10
    for name, sub in subs.items():
        assert f"## `widthsearch {name}`" in text
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert f"`{flag}" in text, (name, flag)
    assert "<!-- cli-reference -->" in (ROOT / "docs/reference/cli.md").read_text()
