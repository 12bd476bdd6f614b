"""The package's shape: imports run down the flow, never up and never in a circle.

Every import of the package's own modules counts, at the top of a module, under
``TYPE_CHECKING`` and inside functions alike. ``python tests/test_layout.py`` prints the graph
check's report.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "widthsearch"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("widthsearch._version",),
    ("widthsearch.errors",),
    ("widthsearch._io",),
    ("widthsearch.space",),
    ("widthsearch.hardware",),
    ("widthsearch.solve",),
    ("widthsearch.models",),
    ("widthsearch.storage",),
    ("widthsearch.search", "widthsearch.train"),
    ("widthsearch.verify",),
    ("widthsearch.report",),
    ("widthsearch.studyfile",),
    ("widthsearch.experiment",),
    ("widthsearch.cli",),
)
"""Bottom to top. A module may import its own layer's unit and the layers below; units that share
a layer (search and train) are independent of each other. The face, ``widthsearch/__init__.py``,
sits above everything and no module imports it."""

HEAVY_LIBRARIES = frozenset({"torch", "timm", "cvxpy", "optuna", "matplotlib"})
"""Imported inside functions only, except by the heavy modules: ``widthsearch --help`` stays
fast."""


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    inside_function: bool
    type_only: bool
    """Under ``if TYPE_CHECKING:``: never run, but it still counts for circles and layers."""


def _module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _scope_walk(tree: ast.AST):
    """(node, inside a function, under TYPE_CHECKING) for every import node of a module."""
    stack: list[tuple[ast.AST, bool, bool]] = [(tree, False, False)]
    while stack:
        node, inside, typing_only = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, inside, typing_only
            function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            stack.append((child, inside or function, typing_only or _is_type_checking(child)))


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports() -> list[Import]:
    """Every own-package import, resolved to the modules it names: ``from widthsearch.solve import
    rounding`` names the module ``widthsearch.solve.rounding``, ``from widthsearch.solve import
    Budgets`` the face ``widthsearch.solve``."""
    found = []
    for name, path in MODULES.items():
        is_package = path.name == "__init__.py"
        base = name.split(".") if is_package else name.split(".")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, inside, typing_only in _scope_walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    kept = base[: len(base) - node.level + 1]
                    module = ".".join(kept + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != "widthsearch":
                    continue
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in MODULES else module)
            else:
                targets = [a.name for a in node.names if a.name.split(".")[0] == "widthsearch"]
            for target in targets:
                resolved = _resolve(target)
                if resolved and resolved != name:
                    found.append(Import(name, resolved, node.lineno, inside, typing_only))
    return list(dict.fromkeys(found))


def unit(module: str) -> str | None:
    """The layer unit of a module: ``widthsearch.solve.rounding`` -> ``widthsearch.solve``."""
    for layer in LAYERS:
        for u in layer:
            if module == u or module.startswith(u + "."):
                return u
    return None


def layer_of(u: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if u in layer)


def heavy_modules() -> set[str]:
    """Modules that import torch or timm at their top: the rest of the package imports them
    inside functions, so that importing the package stays light."""
    heavy = set()
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            libs = []
            if isinstance(node, ast.Import):
                libs = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                libs = [node.module]
            if any(lib.split(".")[0] in HEAVY_LIBRARIES for lib in libs):
                heavy.add(name)
    return heavy


def up_imports(found: list[Import]) -> list[str]:
    bad = []
    for imp in found:
        if imp.importer == "widthsearch":
            continue
        if imp.target == "widthsearch":
            bad.append(f"{imp.importer}:{imp.line} imports the face widthsearch")
            continue
        src, dst = unit(imp.importer), unit(imp.target)
        if src is None or dst is None:
            bad.append(f"{imp.importer}:{imp.line} -> {imp.target}: a module in no layer")
        elif src != dst and layer_of(dst) >= layer_of(src):
            bad.append(f"{imp.importer}:{imp.line} -> {imp.target} runs up or across the flow")
        elif src == dst and imp.target == src and not imp.importer.endswith(".__main__"):
            bad.append(f"{imp.importer}:{imp.line} imports its own package's face {src}")
    return bad


def cycles(found: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in found:
        graph[imp.importer].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def lazy_light_imports(found: list[Import]) -> list[str]:
    """Own-package imports inside functions whose target is not heavy: they belong at the top."""
    heavy = heavy_modules()
    return [
        f"{i.importer}:{i.line} -> {i.target}"
        for i in found
        if i.inside_function and i.target not in heavy
    ]


def light_importing_heavy(found: list[Import]) -> list[str]:
    """Light modules that import a heavy one at their top (and so import torch after all)."""
    heavy = heavy_modules()
    return [
        f"{i.importer}:{i.line} -> {i.target}"
        for i in found
        if not (i.inside_function or i.type_only) and i.importer not in heavy and i.target in heavy
    ]


def report() -> str:
    found = imports()
    lines = [
        f"{len(MODULES)} modules, {len(found)} own-package imports "
        f"({sum(i.inside_function for i in found)} inside functions, all of heavy modules: "
        f"{', '.join(sorted(heavy_modules()))})",
        f"circles: {cycles(found) or 'none'}",
        f"up or across the flow: {up_imports(found) or 'none'}",
        f"light imports inside functions: {lazy_light_imports(found) or 'none'}",
        f"light modules importing heavy ones at the top: {light_importing_heavy(found) or 'none'}",
    ]
    return "\n".join(lines)


def test_no_import_circles():
    assert cycles(imports()) == []


def test_imports_run_down_the_flow():
    assert up_imports(imports()) == []


def test_own_imports_sit_at_the_top_unless_their_target_is_heavy():
    assert lazy_light_imports(imports()) == []


def test_light_modules_do_not_import_heavy_ones_at_the_top():
    assert light_importing_heavy(imports()) == []


def test_every_module_is_in_a_layer():
    assert [m for m in MODULES if m != "widthsearch" and unit(m) is None] == []


@pytest.mark.parametrize(
    "module", ["widthsearch", "widthsearch.cli", *sorted(u for layer in LAYERS for u in layer)]
)
def test_importing_stays_light(module):
    """``import widthsearch.cli`` (so ``widthsearch --help``) and every stage's face load no
    torch, timm, cvxpy, optuna or matplotlib."""
    code = (
        f"import sys, {module}; "
        f"print(sorted(m for m in {sorted(HEAVY_LIBRARIES)!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", f"import {module} loads {out.strip()}"


if __name__ == "__main__":
    print(report())
