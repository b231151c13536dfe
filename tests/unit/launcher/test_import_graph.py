"""No two modules of ``nodepool.launcher`` import each other, directly or
round a longer loop -- imports under ``TYPE_CHECKING`` count too (a cycle
for the type checker is a cycle in the design)."""

from __future__ import annotations

import ast
import pathlib

import nodepool.launcher

PACKAGE = pathlib.Path(nodepool.launcher.__file__).parent


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}"
                                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def _graph() -> dict[str, set[str]]:
    files = {f"nodepool.launcher.{p.stem}": p for p in PACKAGE.glob("*.py")
             if p.stem != "__init__"}
    return {name: _imports(path, set(files)) - {name}
            for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}      # 1: on the path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def test_the_launcher_package_has_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_handler_knows_neither_the_pool_worker_nor_the_manager():
    deps = _graph()["nodepool.launcher.handler"]
    assert not deps & {"nodepool.launcher.poolworker",
                       "nodepool.launcher.provider",
                       "nodepool.launcher.allocator"}, deps


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c",
                                                            "a"]
