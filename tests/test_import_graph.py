"""The library's modules import each other without a cycle (read from their source, imports inside
functions included: a cycle there still ties two modules into one)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stereo_core"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _skipped(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` blocks are never run."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if _skipped(child):
            continue
        yield child
        yield from _walk(child)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` names in its imports (a name imported from a package is its
    submodule where one exists)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def resolve(base: str, level: int) -> str:
        if not level:
            return base
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - (level - 1)]
        return ".".join(anchor + ([base] if base else []))

    for node in _walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module or "", node.level)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args
              and isinstance(node.args[0], ast.Constant)):
            targets = [resolve(node.args[0].value.lstrip("."), len(node.args[0].value) - len(
                node.args[0].value.lstrip(".")))]
        for target in targets:
            if target in modules and target != name:
                found.add(target)
                break  # `from .x import y`: y is x's submodule, else x itself
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def test_the_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert "stereo_core.engine.store" in graph["stereo_core.engine.pipeline"]
    assert "stereo_core.warp_cpu" in graph["stereo_core.warp"], "the lazy import_module is an import too"


def test_stereo_core_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


# --- the engine's seams ------------------------------------------------------------------------------------

SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted((PACKAGE.parent / "nodes").glob("*.py"))


def test_the_nodes_import_only_the_engines_entry_points():
    inside = []
    for path in sorted((PACKAGE.parent / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stereo_core.engine."):
                inside.append(f"{path.name}: from {node.module}")
    assert not inside


def test_no_branch_on_the_kind_of_depth_and_no_subclass_of_conversion():
    import re

    branches, subclasses = [], []
    for path in SOURCES:
        text = path.read_text()
        branches += [f"{path.name}: {line.strip()}" for line in text.splitlines()
                     if re.search(r"depth_video is None|depth_info is not None", line)]
        subclasses += [f"{path.name}: {node.name}" for node in ast.walk(ast.parse(text))
                       if isinstance(node, ast.ClassDef) and any(ast.unparse(base).split(".")[-1] == "Conversion"
                                                                 for base in node.bases)]
    assert not branches and not subclasses, (branches, subclasses)
