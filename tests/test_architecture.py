"""The package's shape: no import cycle inside bench/, no impl named in its code, and the
libraries it declares doing the work they are declared for."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from bench import PROJECT_ROOT
from bench.impl.registry import manifests

BENCH = PROJECT_ROOT / "bench"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(BENCH.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the bench modules it imports, every import statement counted (lazy ones
    inside functions included); a package's own submodules do not count as its imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
            for target in targets:
                found = _resolve(target, modules)
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "bench.results.frame" in graph["bench.results.run"]  # imported inside a method
    assert "bench.system.files" in graph["bench.system.ledger"]


def test_no_import_cycle_in_bench() -> None:
    assert cycles(import_graph()) == []


def readme_layers() -> list[set[str]]:
    """The packages (and top-level modules) of bench/ in the README's layout, bottom first;
    names on one line form one layer."""
    lines = (PROJECT_ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("bench/ "))
    layers: list[set[str]] = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        if line.startswith("   "):
            continue  # a description's second line
        words = [w for w in line.split() if w.endswith(("/", ".py"))]
        layers.append({w.removesuffix("/").removesuffix(".py") for w in words})
    return layers


def _unit(module: str) -> str:
    """The package or top-level module of bench/ a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_imports() -> set[tuple[str, str]]:
    """(importer, imported) between two packages or top-level modules of bench/."""
    return {
        (_unit(module), _unit(target))
        for module, targets in import_graph().items()
        for target in targets
        if _unit(module) != _unit(target)
    }


def test_the_readme_lists_every_package_of_bench() -> None:
    listed = set().union(*readme_layers())
    units = {_unit(m) for m in import_graph()} - {"bench", "__main__"}
    assert units == listed


def test_packages_import_only_from_layers_below_as_the_readme_orders_them() -> None:
    """The package root (``bench``) is below everything and ``bench.__main__`` above."""
    layer = {name: n for n, names in enumerate(readme_layers(), start=1) for name in names}
    layer["bench"], layer["__main__"] = 0, len(layer) + 1
    upward = sorted(
        f"{importer} imports {imported}"
        for importer, imported in package_imports()
        if layer[imported] >= layer[importer]
    )
    assert upward == []


def test_the_layering_check_reads_the_readme_in_order() -> None:
    layers = readme_layers()
    assert layers[0] == {"errors"} and layers[-1] == {"cli"}
    assert {"bpf", "kmod", "vm"} in layers


def test_the_ledger_sits_at_the_bottom() -> None:
    graph = import_graph()
    below = {"bench.system.files", "bench.system.processes", "bench.errors"}
    assert graph["bench.system.ledger"] <= below
    for module in below:
        assert graph[module] <= below, module


def _code_strings(path: Path) -> list[str]:
    """The string literals of a module that are code, not documentation: docstrings and
    comments left out."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(body[0].value.lineno)
    strings = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type in (tokenize.STRING, tokenize.NAME) and token.start[0] not in docstrings:
            strings.append(token.string)
    return strings


def test_no_impl_is_named_in_bench_code() -> None:
    names = set(manifests())
    assert {"blocking-c", "ebpf-xdp"} <= names
    offenders = []
    for path in sorted(BENCH.rglob("*.py")):
        for text in _code_strings(path):
            hits = [n for n in names if n in text]
            if hits:
                offenders.append(f"{path.relative_to(PROJECT_ROOT)}: {text[:60]} ({hits})")
    assert not offenders, "\n".join(offenders)


def test_declared_libraries_are_imported_where_they_work() -> None:
    graph_text = {p: p.read_text() for p in BENCH.rglob("*.py")}

    def importers(library: str) -> set[str]:
        return {
            _module_name(p)
            for p, text in graph_text.items()
            if f"import {library}" in text or f"from {library}" in text
        }

    assert "bench.results.frame" in importers("pandas")  # grouping, trials, medians
    assert "bench.system.processes" in importers("psutil")  # identity, terminate, kill
