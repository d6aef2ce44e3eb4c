"""The structure rules of ``docs/architecture.md``, checked on the source.

- No function in ``anymodal/`` is longer than 60 lines, except the Triton kernels (a kernel
  is one compiled body: splitting it would cost a launch or registers).
- The package's modules do not import each other in a circle at import time (imports under
  ``if TYPE_CHECKING:`` and inside functions are not import-time edges).

ruff (complexity, docstrings, banned imports) and mypy check the rest in ``make lint``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import anymodal

PACKAGE = Path(anymodal.__file__).resolve().parent
MAX_LINES = 60
#: The kernels allowed to be longer (module, function).
LONG_KERNELS = {
    ("anymodal.kernels.triton_kernels", "mip_lse_fwd"),
    ("anymodal.kernels.triton_kernels", "mip_lse_all_fwd"),
    ("anymodal.kernels.triton_kernels", "mip_lse_bwd"),
    ("anymodal.kernels.triton_kernels", "mip_topk_tiles"),
}


def _modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the package (packages by their name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _import_time_targets(stmts: list[ast.stmt], package: str, modules: dict[str, Path]
                         ) -> set[str]:
    """The package's modules that ``stmts`` import when they run (not TYPE_CHECKING)."""
    targets: set[str] = set()
    for node in stmts:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(kept + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            nested = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                nested += handler.body
            targets |= _import_time_targets(nested, package, modules)
    return {t for t in targets if t in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = _import_time_targets(tree.body, package, modules) - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_function_is_longer_than_sixty_lines_but_the_kernels() -> None:
    long = set()
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_LINES:
                    long.add((name, node.name))
    assert long == LONG_KERNELS


def test_no_import_cycle_at_import_time() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a planted circle is found."""
    graph = _graph()
    graph["anymodal.errors"] = graph["anymodal.errors"] | {"anymodal.config"}
    assert any("anymodal.errors" in c and "anymodal.config" in c for c in _cycles(graph))
