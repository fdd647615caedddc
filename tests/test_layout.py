"""The package's shape, read from its source with ``ast`` (no containers, no root).

The applications (``lxactors.apps``) use the public API only, and no two
modules of the package import each other, even lazily (inside a function,
or by name through ``importlib`` / the ``_EXPORTS`` table).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import lxactors

SRC = Path(lxactors.__file__).resolve().parent
PACKAGE = "lxactors"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def _logger_names(tree: ast.AST) -> set[int]:
    """ids of the string constants given to ``getLogger`` (names, not imports)."""
    return {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "getLogger"
            for arg in node.args}


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package modules *name* imports at run time, at any level or by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    loggers = _logger_names(tree)
    # ``python -m MODULE`` starts another process: not an import of MODULE.
    launched = {id(b) for node in ast.walk(tree) if isinstance(node, (ast.Tuple, ast.List))
                for a, b in zip(node.elts, node.elts[1:], strict=False)
                if isinstance(a, ast.Constant) and a.value == "-m"}
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in known else base
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and "." in node.value and node.value in known and id(node) not in loggers
              and id(node) not in launched):
            yield node.value  # a lazy import by name (not the bare package: a log prefix)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: {m for m in _imports(name, path, known) if m in known and m != name}
            for name, path in modules.items()}


def test_graph_sees_imports() -> None:
    graph = _graph()
    # Top level, function level and by name (the lazy _EXPORTS table).
    assert "lxactors._errors" in graph["lxactors._console"]
    assert "lxactors._api" in graph[PACKAGE]
    assert "lxactors.apps.tcpvm" in graph["lxactors.apps.cli"]


def test_no_import_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = stack[stack.index(name):] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        stack.append(name)
        for dep in sorted(graph[name]):
            visit(dep, stack)
        stack.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_apps_use_the_public_api_only() -> None:
    apps = {n: p for n, p in _modules().items() if n.startswith(f"{PACKAGE}.apps")}
    assert f"{PACKAGE}.apps.cli" in apps
    private = []
    for name, path in apps.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):  # TYPE_CHECKING imports too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                targets = [f"{node.module}.{a.name}" for a in node.names]
            private += [f"{name}: {t}" for t in targets
                        if t.startswith(f"{PACKAGE}._") or t.startswith("pykka._")]
    assert not private, private


def test_app_modules_do_not_import_the_cli() -> None:
    graph = _graph()
    apps = [n for n in graph if n.startswith(f"{PACKAGE}.apps.") and n != f"{PACKAGE}.apps.cli"]
    assert [n for n in apps if f"{PACKAGE}.apps.cli" in graph[n]] == []


def test_old_import_paths_are_the_apps() -> None:
    from lxactors import imc, tcpvm
    from lxactors.apps import imc as app_imc
    from lxactors.apps import tcpvm as app_tcpvm

    assert tcpvm.TcpVm is app_tcpvm.TcpVm and tcpvm.serve is app_tcpvm.serve
    assert imc.run is app_imc.run and imc.Exited is app_imc.Exited
    assert set(app_tcpvm.__all__) <= set(tcpvm.__all__)
    assert set(app_imc.__all__) <= set(imc.__all__)
    assert callable(tcpvm.main) and callable(imc.main)
