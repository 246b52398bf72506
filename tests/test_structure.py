"""Structure: no import cycle in holt_core or holt_tui (lazy and TYPE_CHECKING imports included), and holt-tui
loads no engine module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("holt_core", "holt_tui")
ENGINE = ("holt_core.engine", "holt_core.orchestrator")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that ``name`` imports anywhere in its text (top level, functions, TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_cycle_finder_finds_a_lazy_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_lazy_and_type_checking_imports_included() -> None:
    graph = import_graph()
    assert graph["holt_core.engine.orchestrator"] >= {"holt_core.engine.rules", "holt_core.claims"}
    assert _cycles(graph) == []


def test_the_hitl_coordinator_and_the_debug_plane_never_import_the_engine() -> None:
    graph = import_graph()
    for name in ("holt_core.hitl.coordinator", "holt_core.debug.gate", "holt_core.debug.client",
                 "holt_core.claims", "holt_core.lock"):
        assert not {m for m in graph[name] if m.startswith(ENGINE)}, name


def test_importing_holt_tui_loads_no_engine_module() -> None:
    code = ("import json, sys\n"
            # main loads the reader and the control planes (core_sources) when it attaches: import them too.
            "import holt_tui, holt_tui.app, holt_tui.main, holt_tui.reader, holt_tui.core_sources\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('holt_core'))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=True)
    loaded = json.loads(done.stdout)
    assert "holt_core.debug.client" in loaded or "holt_core.blackboard" in loaded  # it did load the core
    assert [m for m in loaded if m.startswith(ENGINE)] == []
