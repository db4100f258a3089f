"""The survey package's modules import one another in one direction: no
cycle, not even one broken by an import deferred into a function (the
licence model once imported its file readers that way while they imported
it). Imports under ``if TYPE_CHECKING:`` are annotations only and do not
count."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                skip.update(id(n) for n in ast.walk(node))
    return skip


def _survey_imports(path: Path, modules: set[str]) -> set[str]:
    """The survey modules ``path`` imports anywhere in its text (top level
    or inside a function), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    named: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named.add(node.module)
            named.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            named.update(a.name for a in node.names)
    return named & modules


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in sorted((ROOT / "survey").rglob("*.py"))}
    modules = set(paths)
    return {m: _survey_imports(p, modules) - {m} for m, p in paths.items()}


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)) is not None:
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)) is not None:
            return found
    return None


def test_the_graph_sees_deferred_imports() -> None:
    graph = _import_graph()
    # survey.check imports the readers inside its functions only
    assert "survey.readers" in graph["survey.check"]
    assert "survey.licence" in graph["survey.readers.licence_files"]


def test_survey_modules_import_each_other_in_one_direction() -> None:
    cycle = _a_cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
