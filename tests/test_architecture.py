"""The shape of the package, read from its source with ``ast`` (nothing is imported):

- no import cycle between the modules of tutorial_kit, counting imports at module level AND
  inside functions (a function-level import only postpones a cycle to the first call);
- no module reaches into another module's private names (``from tutorial_kit.x import _y``,
  ``x._y``) or into a private module of another package (``tutorial_kit.simulate._base`` is
  for ``tutorial_kit.simulate`` only).

Both checkers are also run on a throwaway package with a deliberate cycle and deliberate
private imports, so a passing test cannot come from a checker that sees nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
"""Underscore names that are the public API of ``collections.namedtuple`` classes."""


# --------------------------------------------------------------------------- reading the source


def module_files(root: Path, package: str) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of ``package`` (a folder in ``root``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Every import of one module (module level and inside functions), outside ``if TYPE_CHECKING:`` blocks.

    ``found`` holds ``(line, module, name, bound)``: ``import a.b as c`` gives ``(l, 'a.b', None, 'c')``,
    ``from a import b as c`` gives ``(l, 'a', 'b', 'c')``. ``attributes`` holds every ``x.y.z`` chain
    as ``(line, 'x', ['y', 'z'])``.
    """

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.found: list[tuple[int, str, str | None, str]] = []
        self.attributes: list[tuple[int, str, list[str]]] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((node.lineno, alias.name, None, alias.asname or alias.name.split(".")[0]))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: from . import x, from ..a import y
            package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        for alias in node.names:
            self.found.append((node.lineno, base, alias.name, alias.asname or alias.name))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, value = [], node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name):
            self.attributes.append((node.lineno, value.id, chain[::-1]))
            return  # the inner attributes are part of this chain
        self.generic_visit(node)


def _lazy_names(tree: ast.Module) -> dict[str, str]:
    """``{name: submodule}`` of a package whose ``__init__`` maps names to submodules in ``_WHERE = {...}``
    (the pattern of :func:`tutorial_kit._lazy.lazy_names`), including ``**dict.fromkeys((...), 'sub')``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_WHERE" for t in node.targets) \
                and isinstance(node.value, ast.Dict):
            out: dict[str, str] = {}
            for key, value in zip(node.value.keys, node.value.values):
                if key is not None:
                    out[ast.literal_eval(key)] = ast.literal_eval(value)
                elif isinstance(value, ast.Call) and getattr(value.func, "attr", "") == "fromkeys":
                    names, sub = (ast.literal_eval(arg) for arg in value.args)
                    out.update(dict.fromkeys(names, sub))
            return out
    return {}


def parse_package(root: Path, package: str) -> dict[str, dict]:
    """Per module: its import statements, attribute chains and (for a lazy package) its name -> submodule map."""
    out = {}
    for module, path in module_files(root, package).items():
        tree = ast.parse(path.read_text(), filename=str(path))
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(tree)
        out[module] = {"path": path, "imports": visitor.found, "attributes": visitor.attributes,
                       "lazy": _lazy_names(tree) if path.name == "__init__.py" else {}}
    return out


# --------------------------------------------------------------------------- the import graph


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within ``package``.

    ``import a.b`` and ``from a import b`` (``b`` a submodule) point to ``a.b``; ``from a import f``
    points to ``a``, or to the submodule that defines ``f`` when ``a`` loads its names lazily
    (``_WHERE``); ``x.b.c`` where ``x`` is an imported package points to the deepest submodule named.
    Importing ``a.b`` runs ``a/__init__.py`` first; that implicit edge is not counted (Python always
    initializes a package before its submodules).
    """
    parsed = parse_package(root, package)
    graph: dict[str, set[str]] = {m: set() for m in parsed}

    def resolve(base: str, name: str | None) -> str | None:
        """The module that ``import base`` (name None) or ``from base import name`` loads, if in the package."""
        if name is not None and f"{base}.{name}" in parsed:
            return f"{base}.{name}"
        if base not in parsed:
            return None
        sub = parsed[base]["lazy"].get(name)
        return f"{base}.{sub}" if sub is not None and f"{base}.{sub}" in parsed else base

    for module, info in parsed.items():
        bound: dict[str, str] = {}  # local name -> the module it is bound to
        for _, base, name, as_name in info["imports"]:
            target = resolve(base, name)
            if target is None:
                continue
            graph[module].add(target)
            if name is None:  # import a.b binds a; import a.b as c binds a.b
                first = base.split(".")[0]
                bound[as_name] = first if as_name == first else base
            elif target == f"{base}.{name}":
                bound[as_name] = target
        for _, root_name, chain in info["attributes"]:
            start = bound.get(root_name)
            if start not in parsed:
                continue
            current = start
            for attr in chain:
                if f"{current}.{attr}" in parsed:
                    current = f"{current}.{attr}"
                    continue
                current = resolve(current, attr) or current  # a lazily loaded name
                break
            if current != start:
                graph[module].add(current)
        graph[module].discard(module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module, as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    cycles = []
    for component in components:
        start, members = component[0], set(component)
        paths = {start: [start]}
        queue = [start]
        while queue:  # shortest way back to start inside the component
            v = queue.pop(0)
            for w in sorted(graph[v] & members):
                if w == start:
                    cycles.append(paths[v] + [start])
                    queue = []
                    break
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
    return cycles


# --------------------------------------------------------------------------- private names


def private_uses(root: Path, package: str) -> list[str]:
    """Every place where a module of ``package`` uses another module's private name or a private module
    of another package, as ``'file:line: what'``."""
    parsed = parse_package(root, package)
    problems = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__") and name not in NAMEDTUPLE_API

    def foreign_private_module(module: str, target: str) -> str | None:
        parts = target.split(".")
        for i, part in enumerate(parts):
            if private(part):
                owner = ".".join(parts[:i])  # the package the private module belongs to
                if module != owner and not module.startswith(owner + "."):
                    return ".".join(parts[: i + 1])
        return None

    for module, info in parsed.items():
        where = info["path"].relative_to(root)
        bound: set[str] = set()
        for line, base, name, as_name in info["imports"]:
            if not (base == package or base.startswith(package + ".")):
                continue
            bound.add(as_name)
            if name is not None and private(name):
                problems.append(f"{where}:{line}: imports the private name {name!r} from {base}")
            target = base if name is None else f"{base}.{name}"
            hidden = foreign_private_module(module, target)
            if hidden is not None and not (name is not None and private(name)):
                problems.append(f"{where}:{line}: imports from {hidden}, a private module of another package")
        for line, root_name, chain in info["attributes"]:
            hidden = [i for i, attr in enumerate(chain) if private(attr)]
            if root_name in bound and hidden:
                owner = ".".join([root_name, *chain[: hidden[0]]])
                problems.append(f"{where}:{line}: uses the private attribute {chain[hidden[0]]!r} of {owner}")
    return problems


# --------------------------------------------------------------------------- the tests


def test_tutorial_kit_has_no_import_cycle():
    graph = import_graph(ROOT, "tutorial_kit")
    assert len(graph) > 30 and "tutorial_kit.data.registry" in graph["tutorial_kit.config"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycle(s) in tutorial_kit: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_uses_another_modules_private_names():
    problems = private_uses(ROOT, "tutorial_kit")
    assert not problems, "private names used across modules (make them public or move them):\n" + "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checkers_report_a_deliberate_cycle_and_private_imports(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": '"""A package with a cycle."""\n',
        "pkg/a.py": "from pkg import b\n\nVALUE = 1\n_hidden = 2\n",
        "pkg/b.py": "def f():\n    from pkg.a import VALUE  # function level: still a cycle\n    return VALUE\n",
        "pkg/c.py": ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.d import Thing\n\n"
                     "import pkg.sub._impl\n"),
        "pkg/d.py": ("import pkg.a as alias\nfrom pkg.a import _hidden\nfrom pkg import c\n\n"
                     "Thing = int\n\n\ndef g():\n    return alias._hidden, alias.VALUE\n"),
        "pkg/sub/__init__.py": "from pkg.sub._impl import x\n",
        "pkg/sub/_impl.py": "x = 1\n",
        "pkg/lazy/__init__.py": '_WHERE = {"f": "m", **dict.fromkeys(("g", "h"), "n")}\n',
        "pkg/lazy/m.py": "from pkg.lazy import g\n",
        "pkg/lazy/n.py": "from pkg.lazy import f\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.sub._impl"}  # the TYPE_CHECKING import of pkg.d is not an edge
    assert graph["pkg.d"] == {"pkg.a", "pkg.c"}
    assert graph["pkg.lazy.m"] == {"pkg.lazy.n"} and graph["pkg.lazy.n"] == {"pkg.lazy.m"}  # through _WHERE
    cycles = find_cycles(graph)
    assert ["pkg.a", "pkg.b", "pkg.a"] in cycles and ["pkg.lazy.m", "pkg.lazy.n", "pkg.lazy.m"] in cycles
    assert len(cycles) == 2
    problems = private_uses(tmp_path, "pkg")
    assert any("pkg/d.py:2: imports the private name '_hidden' from pkg.a" in p for p in problems), problems
    assert any("pkg/d.py:9: uses the private attribute '_hidden' of alias" in p for p in problems), problems
    assert any("pkg/c.py:6: imports from pkg.sub._impl, a private module of another package" in p
               for p in problems), problems
    assert not any(p.startswith("pkg/sub/__init__.py") for p in problems)  # its own private module
    assert len(problems) == 3, problems
