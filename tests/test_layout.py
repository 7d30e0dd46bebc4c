"""The package's shape, as docs/architecture.md draws it: imports go one way (no cycles, not even through an import
inside a function), no tool imports another tool, and no module grows past 450 lines (tables of data aside)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "videogn"
MAX_LINES = 450
TABLES = {"videogn.models.formats"}  # mostly the zoo's architectures and key tables (`formats.ARCHITECTURES`)

# The layers, lowest first: a module imports only from its own layer or the ones below (docs/architecture.md).
LAYERS = [
    (
        "videogn.errors",
        "videogn.files",
        "videogn.download",
        "videogn.distributed",
        "videogn.names",
        "videogn.options",
        "videogn.lazy",
    ),
    ("videogn.ops",),
    ("videogn.data",),
    ("videogn.models", "videogn.checkpoints"),
    ("videogn.train",),
    ("videogn.tools",),
    ("videogn.cli", "videogn.__main__", "videogn"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, tree: ast.AST) -> set[str]:
    """The videogn modules `name` imports anywhere in its file (module level or inside functions)."""
    found = set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:  # `from videogn.data import failures` imports the module videogn.data.failures
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    found = {m for m in found if m in MODULES and m != name}
    # importing a.b.c runs the __init__ of a.b first: an edge to every package above it that `name` is not inside
    return found | {p for m in found for p in packages_above(m) if not (name == p or name.startswith(p + "."))}


def packages_above(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


GRAPH = {name: imported(name, ast.parse(path.read_text())) for name, path in MODULES.items()}


def layer(name: str) -> int:
    best = max(
        (
            (i, prefix)
            for i, prefixes in enumerate(LAYERS)
            for prefix in prefixes
            if name == prefix or name.startswith(prefix + ".")
        ),
        key=lambda found: len(found[1]),
    )
    return best[0]


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles() == []


def test_imports_go_down_the_layers():
    upward = [f"{a} → {b}" for a, targets in GRAPH.items() for b in targets if layer(b) > layer(a)]
    assert upward == []


def test_no_tool_imports_another_tool():
    def tool(name: str) -> str | None:
        parts = name.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "tools" else None

    sideways = [
        f"{a} → {b}" for a, targets in GRAPH.items() for b in targets if tool(a) and tool(b) and tool(a) != tool(b)
    ]
    assert sideways == []


def test_no_module_is_too_long():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= TABLES, long


def test_the_checks_can_fail():
    # the graph is read right: a known edge is there, and an edge back would be a cycle
    assert "videogn.data.decoding" in GRAPH["videogn.data.decoder"]
    GRAPH["videogn.data.decoding"].add("videogn.data.decoder")
    try:
        assert cycles()
    finally:
        GRAPH["videogn.data.decoding"].discard("videogn.data.decoder")
