"""What the layer contracts (pyproject.toml, `lint-imports`) cannot say: no module-level import
cycle anywhere in the project, every import inside a function body marked as a lazy one, no
file outside the migrations over 600 lines (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cli", "flows", "models", "notifications", "states")
MAX_LINES = 600


def _sources() -> dict[str, Path]:
    """Module name -> file, for every project module outside the migrations."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(tree: ast.AST, modules: dict[str, Path], top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))  # type: ignore[attr-defined]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_no_module_level_import_cycle() -> None:
    """Counting the imports at the top of each module (a package's ``__init__`` importing its own
    submodules included): no two modules need each other to load."""
    modules = _sources()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        edges[name] = _imports(ast.parse(path.read_text()), modules, top_level_only=True) - {name}
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_function_body_import_of_the_project_is_marked_lazy() -> None:
    """A function-body import of a project module is allowed only where start-up time needs it,
    and says so on its line (``# lazy: <why>``); any other is a hidden loop or a habit."""
    modules = _sources()
    unmarked = []
    for path in modules.values():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and _imports(ast.Module([node], []), modules, True):
                    text = " ".join(lines[node.lineno - 1 : (node.end_lineno or node.lineno)])
                    if "# lazy:" not in text:
                        unmarked.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unmarked == []


def test_no_file_outside_the_migrations_is_over_600_lines() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    long = []
    for name in tracked:
        path = ROOT / name
        if "migrations" in path.parts or path.suffix not in (".py", ".sh", ".j2", ".toml", ".yaml"):
            continue
        count = len(path.read_text().splitlines())
        if count > MAX_LINES:
            long.append(f"{name}: {count}")
    assert long == []
