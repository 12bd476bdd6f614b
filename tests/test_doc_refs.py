"""Every reference the docs and the program's own text make resolves (issue 33).

The new-user audit found the docs naming ``widthsearch.data.held_out_split``,
``widthsearch.reconfig`` and ``widthsearch/verdict.py``, none of which existed, CLI output
pointing to a README section that had moved, and a literal ``PYTHON_OUTPUT`` rendered into the
site. So: every dotted ``widthsearch.*`` name and every repository path (``widthsearch/...``,
``docs/...``, ``tests/...``, ``benchmarks/...``, ``studies/...``, ``reports/...``, ``.ci/...``)
named in README.md, the pages under docs/ and the string constants of the package (its help
texts, messages and docstrings: what the CLI can print) exists; and no placeholder survives
``mkdocs build``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOTTED = re.compile(r"(?<![\w./-])widthsearch(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(
    r"(?<![\w./-])(?:widthsearch|tests|docs|benchmarks|studies|reports|\.ci)/[\w./*-]*[\w*]"
)
FILE_SUFFIXES = {"db", "log", "json", "py", "toml", "csv", "html", "md"}
"""``widthsearch.db`` is the default storage file, not a module: a dotted name ending in one
of these is a file name."""
WRITTEN = {"reports/efficientnet_b0": "the report folder the study-file examples write"}
"""Paths the docs name as what a command writes, not as what the repository holds."""
HISTORY = {"docs/changelog.md": "records renames: it names what no longer exists on purpose"}


def _texts() -> list[tuple[str, str]]:
    """(where, text) of every page and of every string constant in the package."""
    found = []
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        where = str(page.relative_to(ROOT))
        if where not in HISTORY:
            found.append((where, page.read_text()))
    for source in sorted((ROOT / "widthsearch").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((f"{source.relative_to(ROOT)}:{node.lineno}", node.value))
    return found


def _resolves(name: str) -> bool:
    """Whether ``name`` is a module, or an attribute (a dataclass field counts) reached from
    the longest module prefix of it."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            fields = (
                {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else ()
            )
            if attr in fields:
                return attr == parts[-1]  # a field's own attributes are not followed
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_dotted_names_and_paths_resolve():
    missing = set()
    for where, text in _texts():
        for m in DOTTED.finditer(text):
            name = m.group(0)
            if name.rsplit(".", 1)[1] not in FILE_SUFFIXES and not _resolves(name):
                missing.add(f"{where}: {name}")
        for m in PATH.finditer(text):
            path = m.group(0).rstrip(".")
            if any(c.isupper() for c in path) or "*" in path or path in WRITTEN:
                continue  # a placeholder (reports/STUDY), a glob, or what a command writes
            if not (ROOT / path).exists():
                missing.add(f"{where}: {path}")
    assert not missing, "\n".join(sorted(missing))


SECTION = re.compile(r"(README\.md|docs/[\w/.-]+\.md), '([^']+)'")
"""A section of a page, as messages name it: ``docs/guides/own-model.md, 'What training reads'``."""


def test_named_sections_exist():
    missing = set()
    for where, text in _texts():
        for m in SECTION.finditer(text):
            page, title = ROOT / m.group(1), m.group(2)
            headings = re.findall(r"^#+ (.+?)\s*$", page.read_text(), re.M) if page.exists() else []
            if title not in headings:
                missing.add(f"{where}: {m.group(1)}, '{title}'")
    assert not missing, "\n".join(sorted(missing))


def test_the_checks_can_fail():
    assert not _resolves("widthsearch.data.held_out_split")
    assert not _resolves("widthsearch.reconfig")
    assert _resolves("widthsearch.space.width_space.WidthSpace.outputs")  # a field
    assert _resolves("widthsearch.train.output.select")
    assert _placeholders("<article><p>PYTHON_OUTPUT</p></article>")
    assert _placeholders("<article><!-- cli-reference --></article>")
    assert not _placeholders("<article><p>Set <code>MODEL_KWARGS</code>.</p></article>")


ARTICLE = re.compile(r"<article\b.*?</article>", re.S)
CODE = re.compile(r"<(pre|code|script)\b.*?</\1>", re.S)
PLACEHOLDERS = {
    "a paragraph that is one ALL_CAPS name": re.compile(
        r"<p>\s*[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\s*</p>"
    ),
    "a to-do word": re.compile(r"\b(?:TODO|FIXME|TBD|XXX)\b"),
    "template syntax": re.compile(r"\{\{|\}\}|\{%|%\}"),
}
MARKERS = re.compile(r"<!--\s*(?:cli-reference|api-reference)\s*-->")
"""The markers docs/hooks/cli_reference.py replaces: one left means a page was not rendered."""


def _placeholders(html: str) -> list[str]:
    """What looks unfinished in the text of a built page's article (code blocks aside)."""
    found = []
    for article in ARTICLE.findall(html):
        found += [m.group(0) for m in MARKERS.finditer(article)]
        prose = CODE.sub("", article)
        for pattern in PLACEHOLDERS.values():
            found += [m.group(0) for m in pattern.finditer(prose)]
    return found


def test_no_placeholder_survives_the_site_build(tmp_path):
    pytest.importorskip("mkdocs", reason="needs the docs group: uv sync --group docs")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    pages = [p for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "reports"]
    assert len(pages) > 20
    left = {
        str(p.relative_to(site)): found for p in pages if (found := _placeholders(p.read_text()))
    }
    assert not left, left
