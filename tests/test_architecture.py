"""The package's import graph: layers import only downward, and no module imports
itself back through others (every import counts, lazy ones inside functions too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest_crbench

PACKAGE = Path(pytest_crbench.__file__).parent

#: layer of each top-level module or subpackage, lowest first; a module may import
#: its own layer and the layers below it, never one above.
LAYERS = {
    "errors": 0, "_util": 0, "_version": 0,
    "science": 1,
    "datasets": 2,
    "detectors": 3,
    "bench": 4,
    "reporting": 5,
    "pytest_plugin": 6, "cli": 6, "compare_runs": 6,
    "plugin": 7, "__init__": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: not in the layer table of tests/test_architecture.py"
    return LAYERS[top]


def import_graph() -> dict[str, set[str]]:
    """module → the package modules it imports (anywhere in its body)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            assert not (isinstance(node, ast.ImportFrom) and node.level), \
                f"{name}: relative import (the package uses absolute imports)"
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def test_every_module_has_a_layer():
    for name in import_graph():
        _layer(name)


def test_no_upward_import():
    upward = [f"{src} (layer {_layer(src)}) imports {dst} (layer {_layer(dst)})"
              for src, deps in import_graph().items() for dst in deps
              if _layer(dst) > _layer(src)]
    assert upward == []


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_loading_the_plugin_imports_nothing_heavy():
    code = ("import sys, pytest_crbench, pytest_crbench.plugin\n"
            "heavy = sorted(m for m in ('numpy', 'astropy', 'torch', 'deepCR', 'scipy', 'sep',"
            " 'matplotlib', 'jinja2') if m in sys.modules)\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_every_module_declares_its_public_names():
    import importlib

    for name in sorted(import_graph()):
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), f"{name}: no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], f"{name}: __all__ names {missing} that it does not define"
