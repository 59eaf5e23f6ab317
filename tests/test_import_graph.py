"""No import circles in ``experiments/`` or ``htaf_jax/``: the graph of every import
statement (module level and inside functions) between their modules has no cycle.

An import of a module's own parent package is left out (Python runs the parent's
``__init__`` first whatever the child does); ``from pkg import name`` counts as an
import of ``pkg.name`` where that is a module, else of ``pkg``.
"""

from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modules(root: str, packages) -> dict[str, str]:
    out = {}
    for package in packages:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for file in (f for f in files if f.endswith(".py")):
                path = os.path.join(folder, file)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def import_graph(root: str, packages) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports."""
    mods = _modules(root, packages)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets.update(subs or [base])
        graph[name] = {
            t for t in map(owner, targets) if t and t != name and not name.startswith(t + ".")
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
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
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_in_the_library_or_the_experiments():
    graph = import_graph(REPO, ["htaf_jax", "experiments"])
    assert {"experiments.run", "experiments.configs.studies", "htaf_jax.train.loop"} <= set(graph)
    assert "experiments.study" in graph["experiments.configs.studies"]
    assert cycles(graph) == []


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg import a\n")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(str(tmp_path), ["pkg"])
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.a"] == {"pkg.b"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
