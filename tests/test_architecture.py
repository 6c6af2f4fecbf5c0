"""The layers, read from the code's own imports: no cycles, and imports point one way.

Every ``import`` and ``from … import`` in ``bot/`` and ``reporter/`` counts, including
those inside functions (a lazy import is still a dependency). ``from pkg import mod``
counts as a dependency on ``pkg.mod``, not on the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    files = sorted([*REPO.glob("bot/**/*.py"), *REPO.glob("reporter/**/*.py")])
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        deps.add(submodule)
                    elif source in modules:
                        deps.add(source)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


GRAPH = import_graph()


def test_the_graph_sees_the_known_edges() -> None:
    # Guards the reader itself: a graph with no edges would pass every rule below.
    assert "bot.core.estimate" in GRAPH["bot.core.triggers"]
    assert "bot.service.kill_flow" in GRAPH["bot.service.facade"]
    assert "bot.cli.demo" in GRAPH["bot.cli.main"]  # imported inside a function


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(GRAPH) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Which layers each layer may import (besides itself). Inner layers know nothing of outer.
ALLOWED: dict[str, tuple[str, ...]] = {
    "reporter": ("reporter",),
    "bot.core": ("bot.core",),
    "bot.chat": ("bot.core", "bot.chat"),
    "bot.adapters": ("bot.core", "bot.adapters", "reporter.wire"),
    "bot.settings": ("bot.core",),
    "bot.service": (
        "bot.core",
        "bot.adapters",
        "bot.chat.base",
        "bot.settings",
        "bot.service",
        "reporter.wire",
    ),
    "bot.api": ("bot.service", "bot.adapters.store", "reporter.wire"),
    "bot.sched": ("bot.service",),
}


def _layer(module: str) -> str | None:
    matches = [layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")]
    return max(matches, key=len) if matches else None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_inward(module: str) -> None:
    layer = _layer(module)
    if layer is None:  # the outermost ring: bot.app wires, bot.cli drives; both may use all
        assert module == "bot" or module.startswith(("bot.app", "bot.cli", "bot.data"))
        return
    allowed = ALLOWED[layer]
    wrong = sorted(
        dep
        for dep in GRAPH[module]
        if not any(dep == a or dep.startswith(a + ".") for a in allowed)
    )
    assert wrong == [], f"{module} ({layer}) may import only {allowed}"


@pytest.mark.parametrize("path", sorted(REPO.glob("bot/service/*.py")), ids=lambda p: p.name)
def test_a_long_service_module_says_why_at_its_top(path: Path) -> None:
    text = path.read_text()
    if text.count("\n") <= 500:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert "lines" in docstring, f"{path.name}: over 500 lines and its docstring says not why"
