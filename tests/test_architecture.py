"""Structure rules checked on the source itself (no imports are executed).

No import cycles between the project's modules (kernel/, subgraphs/, workers/, nexuscart/). Every import counts,
at module level and inside functions alike: a function-level import that dodges a cycle still leaves the two
modules depending on each other, only later and hidden. Imports under `if TYPE_CHECKING:` are left out (they
never run). `from package import name` depends on `package.name` when that is a module, else on `package`.
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kernel", "subgraphs", "workers", "nexuscart", "ml")


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the project's packages."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except those in an `if TYPE_CHECKING:` body."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:  # `else:` of a TYPE_CHECKING test does run
                if isinstance(other, (ast.Import, ast.ImportFrom)):
                    yield other
                else:
                    yield from _import_nodes(other)
        else:
            yield from _import_nodes(child)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """The project modules `module` imports."""
    known = set(known)
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        # `import a.b.c` of a module we know; a name we do not know may be an attribute: its nearest module
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)

    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        else:
            source = _absolute(module, path.name == "__init__.py", node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                add(submodule if submodule in known else source)
    found.discard(module)  # a package importing its own name is not a cycle worth reporting
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = []

        def enter(node: str) -> None:
            nonlocal counter
            index[node] = low[node] = counter
            counter += 1
            stack.append(node)
            on_stack.add(node)
            work.append((node, iter(sorted(graph.get(node, ())))))

        enter(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    enter(successor)
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda c: (-len(c), c))


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return f"  {', '.join(component)}\n" + "\n".join(edges)


def test_no_import_cycles_between_project_modules() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(c, graph) for c in found)


def test_a_domains_events_module_is_a_contract_without_dependencies() -> None:
    """subgraphs/<domain>/events.py holds topics and payload types only: it may import the standard library,
    kernel.events and other domains' contracts; never its domain's service, repository or models, nor a
    database, Redis or Kafka client. Consumers import these modules, so they must pull in nothing else."""
    modules = project_modules()
    offenders: dict[str, list[str]] = {}
    for name, path in modules.items():
        if not (name.startswith("subgraphs.") and name.endswith(".events")):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        bad = []
        for node in _import_nodes(tree):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [_absolute(name, False, node)])
            for target in targets:
                top = target.split(".")[0]
                allowed = (target == "kernel.events" or (top == "subgraphs" and target.endswith(".events"))
                           or (top in sys.stdlib_module_names and top not in PACKAGES))
                if not allowed:
                    bad.append(target)
        if bad:
            offenders[name] = bad
    assert not offenders, f"contract modules with dependencies: {offenders}"


def test_every_topic_is_produced_by_the_domain_that_declares_it() -> None:
    """A topic exists because something emits it: each payload type declared (`topic=`) in
    subgraphs/<domain>/events.py is used by a module of that domain other than its events.py and consumers.py
    (its producer), so no topic lingers that nothing produces."""
    modules = project_modules()
    unproduced = []
    for name, path in modules.items():
        if not (name.startswith("subgraphs.") and name.endswith(".events")):
            continue
        domain = name.rpartition(".")[0]
        declared = {node.name for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ClassDef) and any(k.arg == "topic" for k in node.keywords)}
        used: set[str] = set()
        for other, other_path in modules.items():
            if other.startswith(f"{domain}.") and other not in (name, f"{domain}.consumers"):
                for node in ast.walk(ast.parse(other_path.read_text())):
                    if isinstance(node, ast.Name):
                        used.add(node.id)
                    elif isinstance(node, ast.Attribute):
                        used.add(node.attr)
        unproduced += [f"{name}.{cls}" for cls in sorted(declared - used)]
    assert not unproduced, f"payload types nothing in their domain produces: {unproduced}"


def test_the_cycle_finder_sees_function_level_and_from_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle closed by a function-level `from package import module` is found, and one
    closed only under TYPE_CHECKING is not."""
    package = tmp_path / "kernel"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from kernel.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from kernel import a\n    return a\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kernel import d\n")
    (package / "d.py").write_text("from . import c\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()

    assert cycles(import_graph(tmp_path)) == [["kernel.a", "kernel.b"]]


def _multi_values_calls(tree: ast.AST) -> Iterator[int]:
    """Lines of `.values([...])`, `.values([... for ...])` or `.values(list(...))`: SQLAlchemy's multi-row VALUES."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"
                and len(node.args) == 1):
            arg = node.args[0]
            if isinstance(arg, ast.List | ast.ListComp) or (
                    isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "list"):
                yield node.lineno


def test_rows_are_inserted_as_an_executemany_not_a_multi_row_values_clause() -> None:
    """`insert(t).values([row, row])` is never cached by SQLAlchemy: every call compiles the statement again
    (measured: most of the worker's compile time, one compile per notification, purchase, shipment line and
    interaction). `session.execute(insert(t), rows)` is compiled once and sent as one multi-row statement."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in project_modules().values()
             for line in _multi_values_calls(ast.parse(path.read_text()))]
    assert not found, f"multi-row .values(...) (use session.execute(insert(table), rows)): {found}"


def test_the_multi_values_finder_sees_lists_comprehensions_and_list_calls() -> None:
    source = ("insert(t).values([{'a': 1}])\ninsert(t).values([r for r in rows])\ninsert(t).values(list(rows))\n"
              "insert(t).values(a=1)\ninsert(t).values({'a': 1})\nd.values()\n")
    assert list(_multi_values_calls(ast.parse(source))) == [1, 2, 3]


def _in_list_calls(tree: ast.AST) -> Iterator[int]:
    """Lines of `column.in_(values)` whose argument is not a subquery (`.scalar_subquery()`, `select(...)`)."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "in_"
                and len(node.args) == 1):
            arg = node.args[0]
            subquery = isinstance(arg, ast.Call) and (
                (isinstance(arg.func, ast.Attribute) and arg.func.attr in {"scalar_subquery", "subquery"})
                or (isinstance(arg.func, ast.Name) and arg.func.id == "select"))
            if not subquery:
                yield node.lineno


def test_a_list_of_values_travels_as_one_array_parameter() -> None:
    """`column.in_(values)` renders one statement text per number of values, so the driver prepares it again for
    each length, and SQLAlchemy expands its parameters on every execution (measured: ~10% of the workers' SQLAlchemy
    samples). `kernel.db.any_of(column, values)` sends `= ANY(:array)`, one text for any length."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in project_modules().values()
             for line in _in_list_calls(ast.parse(path.read_text()))]
    assert not found, f".in_(values) (use kernel.db.any_of(column, values)): {found}"


def test_the_in_list_finder_leaves_subqueries_alone() -> None:
    source = ("t.c.id.in_(ids)\nt.c.id.in_([1, 2])\nt.c.id.in_(list(ids))\nt.c.id.in_(q.scalar_subquery())\n"
              "t.c.id.in_(select(u.c.id))\n")
    assert list(_in_list_calls(ast.parse(source))) == [1, 2, 3]
