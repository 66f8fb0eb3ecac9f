"""The library's import graph: no cycle among mdmlib modules, function-level imports counted;
the modules the DAG is built from import no PyTorch."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

# What rules/common.smk imports to build the DAG: none of it may pull in torch.
DAG_MODULES = ("mdmlib.config", "mdmlib.paths", "mdmlib.intervals.choice", "mdmlib.intervals.registry",
               "mdmlib.models.registry", "mdmlib.training.job", "mdmlib.studies.runs", "mdmlib.studies.reallocation")


def module_name(path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imported_modules(tree: ast.AST, modules: set[str]) -> set[str]:
    """Every mdmlib module a module imports, at any depth (functions included), except under
    ``if TYPE_CHECKING:``, which never runs."""
    found, stack = set(), [tree]
    while stack:
        node = stack.pop()
        if is_type_checking_block(node):
            continue
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}"
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (REPO / "mdmlib").rglob("*.py")}
    return {m: imported_modules(ast.parse(p.read_text()), set(paths)) - {m} for m, p in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles found by depth-first search (one per back edge)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_cycle_finder_finds_a_function_level_cycle():
    graph = {"a": set(), "b": set()}
    graph["a"] = imported_modules(ast.parse("def f():\n    from b import g\n"), {"a", "b"})
    graph["b"] = imported_modules(ast.parse("import a\nif TYPE_CHECKING:\n    import b\n"), {"a", "b"})
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert cycles(graph) == [["a", "b", "a"]]


def test_no_import_cycle_among_mdmlib_modules():
    graph = import_graph()
    assert len(graph) > 40 and "mdmlib.training.loop" in graph
    assert cycles(graph) == []


def test_the_modules_that_build_the_dag_import_no_torch():
    code = ("import sys\n"
            f"import {', '.join(DAG_MODULES)}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'scipy'))\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"
