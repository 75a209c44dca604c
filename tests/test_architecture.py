"""The shape of the package: the layered import contract holds, docs/architecture.md's tree is
the package tree, functions are short, packages say what they are, numbers stay out of docstrings."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "runner"
MAX_LINES = 60
ARCHITECTURE = REPO / "docs" / "architecture.md"
LONG_ON_PURPOSE: set[str] = set()  # a function docs/architecture.md says why is long


def runner_modules() -> list[Path]:
    return sorted(p for p in RUNNER.rglob("*.py") if "__pycache__" not in p.parts)


def documented_tree() -> set[str]:
    """Paths the tree in docs/architecture.md names: `pkg/` lines and the `module.py` lines
    under them (indented two spaces more)."""
    text = ARCHITECTURE.read_text()
    block = text[text.index("## The tree"):].split("```")[1]
    named, package = set(), ""
    for line in block.splitlines():
        match = re.match(r"^( *)(\w+/|\w+\.py)(?=\s|$)", line)
        if not match or match.group(2) == "runner/":
            continue
        depth, name = len(match.group(1)), match.group(2)
        if name.endswith("/"):
            package = name
            named.add(name)
        else:
            named.add(f"{package}{name}" if depth > 2 else name)
    return named


def test_the_layered_import_contract_holds():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0


def test_the_documented_tree_is_the_package_tree():
    actual = set()
    for path in runner_modules():
        relative = path.relative_to(RUNNER)
        if path.name in ("__init__.py", "__main__.py"):
            if path.name == "__init__.py" and len(relative.parts) == 2:
                actual.add(f"{relative.parts[0]}/")
            continue
        actual.add(relative.as_posix())
    assert documented_tree() == actual


REPO_PATH = re.compile(r"(?<![\w./-])((?:runner|tests|bench|conf|sweeps|studies|comparisons|docs|\.ci)/[\w./*<>-]*[\w*>])")


def test_every_repository_file_the_documentation_names_exists():
    """`runner/sweep/storage.py`, `bench/threads.py`, `docs/lr_find.png`, ...: placeholders
    (`<study>`, NAME, *) aside, each path the README, CONTRIBUTING.md and the docs pages name
    is in the repository."""
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {(page, m.group(1)) for page in pages for m in REPO_PATH.finditer(page.read_text())}
    missing = sorted(p for page, p in named if not ((REPO / p).exists() or (page.parent / p).exists())
                     and not re.search(r"NAME|<|\*", p))
    assert len(named) > 30 and missing == []


def test_no_function_is_longer_than_60_lines_unless_the_architecture_page_says_why():
    long = set()
    for path in runner_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_LINES:
                long.add(f"{path.relative_to(RUNNER).as_posix()}:{node.name}")
    assert long == LONG_ON_PURPOSE
    page = ARCHITECTURE.read_text()
    assert all(name.split(":")[1] in page for name in LONG_ON_PURPOSE)


@pytest.mark.parametrize("package", sorted(p.parent.name for p in RUNNER.glob("*/__init__.py")))
def test_every_package_says_in_one_line_what_it_is(package):
    doc = ast.get_docstring(ast.parse((RUNNER / package / "__init__.py").read_text()))
    assert doc and len(doc.splitlines()) == 1, package


def test_docstrings_carry_no_measured_figures():
    """Timings and ratios belong in docs/performance.md and the benchmarks' output."""
    figure = re.compile(r"\b\d+(\.\d+)?\s?(us|µs|ms)\b|\b\d+(\.\d+)?\s?s (per|a) (step|call|epoch)\b")
    found = []
    for path in runner_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node) or ""
                found += [f"{path.name}: {m.group(0)}" for m in figure.finditer(doc)]
    assert found == []


def test_the_sub_commands_are_imported_normally():
    source = (RUNNER / "cli" / "app.py").read_text()
    assert "__import__" not in source and "importlib" not in source


def module_imports(package: str) -> dict[str, set[str]]:
    """Each module of `package` -> the package's modules it imports, at its top or inside a
    function alike (a function's import is a dependency all the same)."""
    modules = {p.stem: p for p in (RUNNER / package).glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                parts = target.split(".")
                if parts[:2] == ["optlab", package] and len(parts) > 2 and parts[2] in modules and parts[2] != name:
                    graph[name].add(parts[2])
    return graph


def circle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from `start` back to it, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


@pytest.mark.parametrize("package", ["sweep", "training"])
def test_the_sweep_and_training_packages_have_no_import_circle(package):
    graph = module_imports(package)
    circles = [circle for name in graph if (circle := circle_from(graph, name))]
    assert circles == [], " -> ".join(circles[0])
