"""The folder tree is the architecture: imports run one way and no module imports itself back."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lower layers never import higher ones; the two flows sit side by side and never meet.
LAYERS: dict[str, int] = {
    "common.platform": 0,
    "common.inference": 1,
    "common.ingestion": 2,
    "common.query": 2,
    "common.localstack": 3,
    "common.cli": 4,
    "functions": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    files = [*(ROOT / "common").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    return {module_name(path): path for path in files}


def imported_modules(path: Path, known: set[str]) -> Iterator[str]:
    """Every project module `path` imports, at module level or inside a function.

    `from package import module` counts as importing `module` (Python runs the package's
    `__init__` first whatever is imported from it, which is no dependency of the importer's).
    """
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    yield submodule
                elif node.module in known:
                    yield node.module


def layer(module: str) -> tuple[str, int] | None:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    return None


def import_graph() -> dict[str, set[str]]:
    modules = sources()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        # A package's own modules import their package's __init__ implicitly; leave that out.
        graph[name] = {
            target
            for target in imported_modules(path, known)
            if target != name and not (path.name == "__init__.py" and target == package)
        }
    return graph


def test_common_top_level_holds_only_packages() -> None:
    top = [p.name for p in (ROOT / "common").iterdir() if p.suffix == ".py"]
    assert sorted(top) == ["__init__.py"]
    packages = {p.name for p in (ROOT / "common").iterdir() if (p / "__init__.py").exists()}
    assert packages == {"cli", "inference", "ingestion", "localstack", "platform", "query"}


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in (ROOT / "common").rglob("__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring, f"{init.relative_to(ROOT)} has no docstring"


def test_imports_run_from_functions_through_flows_to_the_platform() -> None:
    wrong = []
    for source, targets in import_graph().items():
        if source in {"common", "functions"}:
            continue  # the roots' docstrings only
        source_layer = layer(source)
        assert source_layer is not None, source
        for target in targets:
            target_layer = layer(target)
            assert target_layer is not None, target
            same_package = source_layer[0] == target_layer[0]
            if not same_package and target_layer[1] >= source_layer[1]:
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)
