"""The layering rules, checked on the source: a core without Dagster, no import cycles, no private
imports across modules, and assets that only wire (short bodies)."""

from __future__ import annotations

import ast
from pathlib import Path

import atft_dagster

PACKAGE = Path(atft_dagster.__file__).parent
DAGSTER_LAYER = ("atft_dagster.defs", "atft_dagster.definitions", "atft_dagster.cli")
MAX_ASSET_LINES = 40  # load, call the core, write, metadata


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


MODULES = _modules()


def _imports(tree: ast.Module) -> list[tuple[str, list[str], bool]]:
    """(module, imported names, at module level) for every import in ``tree``."""
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names], id(node) in top))
    return out


def _is_core(name: str) -> bool:
    return not name.startswith(DAGSTER_LAYER)


def test_the_core_imports_neither_dagster_nor_the_dagster_layer():
    offenders = [
        (name, mod)
        for name, tree in MODULES.items()
        if _is_core(name)
        for mod, _, _ in _imports(tree)
        if mod.split(".")[0] in ("dagster", "dagster_mlflow") or (mod.startswith(DAGSTER_LAYER))
    ]
    assert not offenders, offenders
    assert sum(_is_core(n) for n in MODULES) > 30  # the check saw the core


def test_no_module_imports_a_private_name_of_another():
    offenders = [
        (name, mod, n)
        for name, tree in MODULES.items()
        for mod, names, _ in _imports(tree)
        if mod.startswith("atft_dagster") and mod != name
        for n in names
        if n.startswith("_")
    ]
    assert not offenders, offenders


def test_module_level_imports_have_no_cycles():
    graph = {
        name: {
            target
            for mod, names, top in _imports(tree)
            if top and mod.startswith("atft_dagster")
            for target in [mod, *(f"{mod}.{n}" for n in names)]
            if target in MODULES and target != name
        }
        for name, tree in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def _is_asset(fn: ast.FunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr == "asset":
            return True
    return False


def test_asset_bodies_only_wire():
    long = {}
    for name, tree in MODULES.items():
        if not name.startswith("atft_dagster.defs"):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and _is_asset(node):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                lines = body[-1].end_lineno - body[0].lineno + 1
                if lines > MAX_ASSET_LINES:
                    long[f"{name}.{node.name}"] = lines
    assert not long, f"asset bodies over {MAX_ASSET_LINES} lines (move the logic into the core): {long}"
