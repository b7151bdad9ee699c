"""No import circle among the modules of ``mrtrain/``, ``engine/``, ``storage/`` and ``mr_jobs/``, read from
the source: every import statement, function-level ones too (an import inside a function that closes a
circle is a circle that only a lazy import hides).

The graph has one node per module and an edge from a module to every module of the four folders it
imports (``from a.b import c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b``). A circle is
a strongly connected component of more than one module. :data:`KNOWN_CIRCLES` lists the circles the tree
still has, each as the set of its modules; the goal is an empty list: a branch that breaks one removes it,
and a stale entry fails as a new circle does.
"""

from pathlib import Path

from tests.test_layering import imports

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the package it is installed as (setup.cfg's ``package_dir``).
PACKAGES = {"mrtrain": "mrtrain", "engine": "mrtrain.engine", "mr_jobs": "mrtrain.mr_jobs",
            "storage": "mrtrain.storage"}
#: The circles the tree still has (none: a new one must not appear).
KNOWN_CIRCLES = ()


def modules(root):
    """``{installed name: path}`` of every module below ``root``'s package folders."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            found[".".join([package, *(part for part in parts if part != "__init__")])] = path
    return found


def import_graph(root):
    """``{module: {imported module: line of its first import}}`` over :func:`modules` (self-imports
    left out)."""
    known = modules(root)
    graph = {}
    for module, path in known.items():
        edges = graph.setdefault(module, {})
        for line, name in sorted(imports(path, module)):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.setdefault(name, line)
    return graph


def circles(graph):
    """The strongly connected components of ``graph`` with more than one module (Tarjan's algorithm,
    iterative), as frozensets."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def describe(graph, component, paths):
    """One circle through ``component``'s first module, as ``file:line imports module`` steps."""
    start = min(component)
    trail, seen, node = [start], {start}, start
    while True:
        # Follow, inside the component, the edge towards the start if there is one, else a new module.
        edges = sorted(name for name in graph[node] if name in component)
        nxt = start if start in edges else next((name for name in edges if name not in seen), edges[0])
        trail.append(nxt)
        if nxt in seen:
            break
        seen.add(nxt)
        node = nxt
    trail = trail[trail.index(trail[-1]):]
    return "; ".join(f"{paths[a].relative_to(ROOT) if paths[a].is_relative_to(ROOT) else paths[a]}:"
                     f"{graph[a][b]} imports {b}" for a, b in zip(trail, trail[1:], strict=False))


def test_no_import_circle_but_the_known_ones():
    graph, paths = import_graph(ROOT), modules(ROOT)
    found = circles(graph)
    new = [component for component in found if component not in KNOWN_CIRCLES]
    assert [describe(graph, component, paths) for component in new] == []
    assert [sorted(component) for component in KNOWN_CIRCLES if component not in found] == [], (
        "a known circle is gone or changed: update KNOWN_CIRCLES")


def test_the_checker_finds_a_circle_closed_inside_a_function(tmp_path):
    for folder in PACKAGES:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "engine" / "base.py").write_text("import numpy as np\n\n\ndef make():\n"
                                                "    from mrtrain.engine.child import Child\n")
    (tmp_path / "engine" / "child.py").write_text("from mrtrain.engine.base import make\n")
    (tmp_path / "storage" / "a.py").write_text("from . import b\n")
    (tmp_path / "storage" / "b.py").write_text("def f():\n    from .a import g\n")
    (tmp_path / "mrtrain" / "top.py").write_text("from mrtrain.storage import a\n"
                                                 "import mrtrain.engine.base\n")
    graph, paths = import_graph(tmp_path), modules(tmp_path)
    assert graph["mrtrain.top"] == {"mrtrain.storage.a": 1, "mrtrain.engine.base": 2}
    found = circles(graph)
    assert sorted(sorted(component) for component in found) == [
        ["mrtrain.engine.base", "mrtrain.engine.child"], ["mrtrain.storage.a", "mrtrain.storage.b"]]
    engine = next(component for component in found if "mrtrain.engine.base" in component)
    assert describe(graph, engine, paths) == (
        f"{tmp_path / 'engine' / 'base.py'}:5 imports mrtrain.engine.child; "
        f"{tmp_path / 'engine' / 'child.py'}:1 imports mrtrain.engine.base")

