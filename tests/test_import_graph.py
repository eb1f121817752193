"""fastlr's modules import each other without cycles at import time (issue 13): module-level imports
only; an import inside a function (a lazy one) runs after both modules are complete and is allowed."""

from __future__ import annotations

import ast
import pathlib

import fastlr

ROOT = pathlib.Path(fastlr.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    out = [base]
    out += [f"{base}.{a.name}" for a in node.names]  # `from . import x` may name a submodule
    return out


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text())
        deps: set[str] = set()
        for node in tree.body:  # module level only (also inside top-level if/try blocks)
            stack = [node]
            while stack:
                n = stack.pop()
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n.test):
                    continue
                if isinstance(n, ast.Import):
                    deps.update(a.name for a in n.names)
                elif isinstance(n, ast.ImportFrom):
                    deps.update(_resolve(mod, path.name == "__init__.py", n))
                else:
                    stack.extend(ast.iter_child_nodes(n))
        graph[mod] = {d for d in deps if d in files and d != mod}
    # importing a.b.c runs a and a.b first
    for mod in list(graph):
        for d in list(graph[mod]):
            parts = d.split(".")
            graph[mod].update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in files)
        graph[mod].discard(mod)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if m.startswith(d + "."):  # a submodule importing its own package: the package is mid-import
                continue
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "fastlr.schedules._names" in graph and "fastlr.lr_scheduler" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
