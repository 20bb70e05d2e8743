"""The package's layout by layer (docs/design.md, "Layout"): no import cycle, imports that only go down
the layers, a small top level, and a training loop that reads in one sitting.

The import graph is read from the source with `ast`, nothing is imported. Every `import augbench...` and
`from augbench... import ...` of a module counts, at module level AND inside functions (a lazy import is
still a dependency: a cycle through one is still a cycle), except under `if TYPE_CHECKING:`.
`from pkg import name` is an edge to the submodule pkg.name when there is one, else to pkg. The package
`__init__` that Python runs on the way to a submodule is not an edge of its own (an explicit import of a
package is).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "augbench"
MAX_TOP_LEVEL = 8  # modules at the top of augbench/, __init__.py aside
MAX_FUNCTION_LINES = 60  # in augbench/train/

# Bottom to top: a module imports from its own layer or the ones below, never above. The first prefix
# that matches a module names its layer (so augbench.store.atomic is below the rest of augbench.store).
LAYERS = [
    ("augbench.errors", "augbench.env", "augbench.store.atomic"),  # no augbench imports but these
    ("augbench.recipes", "augbench.store", "augbench.data", "augbench.augment"),  # policy -> engine; data; rows
    ("augbench.config",),  # RunConfig: validates against the policies, data sets and recipes
    ("augbench.models", "augbench.methods"),  # -> method
    ("augbench.train", "augbench.eval"),  # pretraining; evaluation
    ("augbench.run",),  # -> run: one config -> one row
    ("augbench.sweeps", "augbench.bench", "augbench.export"),  # -> sweep (and the other users of runs)
    ("augbench.cli", "augbench"),  # the commands; the package's lazy `load_backbone`
]


def modules() -> dict[str, tuple[Path, bool]]:
    """dotted name -> (file, is a package __init__) for every module under augbench/."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node, in functions too, outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:  # the longest known module that `name` is or is inside
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        package = name if is_pkg else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            deps |= {t for t in map(resolve, targets) if t is not None and t != name}
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(c)) for c in comps]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest path back to its start through the component: a -> b -> ... -> a."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def _fmt(cyc: list[list[str]]) -> str:
    return "\n  ".join(" -> ".join(c) for c in cyc)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles in augbench/ (imports inside functions included):\n  " + _fmt(found)


def test_no_import_cycle_outside_augment():
    """The same, for cycles that touch a module outside augbench/augment (whose engine is reworked apart)."""
    found = [c for c in cycles(import_graph()) if any(not m.startswith("augbench.augment") for m in c)]
    assert not found, "import cycles in augbench/ outside augment/:\n  " + _fmt(found)


def layer(module: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module}: in no layer of tests/test_layout.py's LAYERS"
    return best[0]


def test_imports_go_down_the_layers():
    """policy -> engine -> method -> run -> sweep -> analysis: no module imports from a layer above its own."""
    up = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
          for m, deps in sorted(import_graph().items()) for d in sorted(deps) if layer(d) > layer(m)]
    assert not up, "imports that climb the layers:\n  " + "\n  ".join(up)


def test_top_level_is_small():
    top = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules at the top of augbench/ (at most {MAX_TOP_LEVEL}): {top}"


def test_training_functions_read_in_one_sitting():
    long = []
    for path in sorted((PKG / "train").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = node.end_lineno - first + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in augbench/train/:\n  " + "\n  ".join(long)


def test_the_graph_sees_lazy_imports_and_a_cycle(tmp_path, monkeypatch):
    """The checker itself: a cycle through an import inside a function is found and printed."""
    pkg = tmp_path / "augbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from augbench.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from augbench import a\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from augbench import a\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PKG", pkg)
    graph = import_graph()
    assert graph["augbench.a"] == {"augbench.sub.b"} and graph["augbench.sub.b"] == {"augbench.a"}
    assert graph["augbench.sub.c"] == set()  # TYPE_CHECKING only
    assert cycles(graph) == [["augbench.a", "augbench.sub.b", "augbench.a"]]
