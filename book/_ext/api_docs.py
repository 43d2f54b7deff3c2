"""Sphinx extension of the course book: the API reference page (book/api.md) from the docstrings.

book/api.md documents each namespace of ``tutorial_kit`` with ``automodule`` (Sphinx autodoc, and
napoleon for the Google-style docstrings), so that a name appears where the notebooks use it:
``tutorial_kit.models.ScPRAM``, not ``tutorial_kit.models.scpram.ScPRAM``. The package defines most
names in submodules and re-exports them (lazily) from its namespaces; this extension makes autodoc
and the cross-references follow that layout:

- **Constants re-exported by a namespace** (``tk.data.REGISTRY``, ``tk.simulate.FLOOR``) get the
  docstring written beside their definition in the submodule; autodoc would otherwise find none and
  leave them out. Values whose text is longer than ``MAX_VALUE_CHARS`` are not printed.
- **Named-tuple fields**: the ``Alias for field number N`` properties are left out; napoleon renders
  the class docstring's ``Attributes:`` section instead.
- **Docstrings of constants and attributes are plain text**: napoleon would read a first line such
  as ``The three guide calls: ...`` as ``type: description`` and link "The three guide calls" as a
  type. Functions, classes, methods, properties and modules still go through napoleon.
- **Quoted annotations** (``-> "pd.DataFrame"`` in a module with ``from __future__ import
  annotations``) are shown unquoted, in signatures and in ``:type:`` fields (napoleon's attribute
  types included), so they read as types rather than as string literals.
- **References by defining module or short name** (``:func:`tutorial_kit.simulate.gan.diversity```,
  ``:data:`REGISTRY``` inside ``tutorial_kit.data.registry``, ``:mod:`tutorial_kit.data.schema```)
  resolve to the one place the API page documents the name (``tutorial_kit.simulate.diversity``,
  ``tutorial_kit.data.REGISTRY``, the ``tutorial_kit.data`` section), and only when exactly one
  documented object of the same namespace fits; anything else stays a broken reference, reported.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

PACKAGE = "tutorial_kit"
MAX_VALUE_CHARS = 300
PLAIN_TEXT = ("data", "attribute")  # autodoc object types whose docstrings napoleon does not rewrite


# --------------------------------------------------------------------------- constants of a namespace


def _attribute_doc(name: str, obj: Any) -> list[str] | None:
    """The docstring written beside ``name = ...`` in the tutorial_kit module that defines ``obj``."""
    from sphinx.pycode import ModuleAnalyzer
    from sphinx.errors import PycodeError

    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith(PACKAGE + ".") or module is None or getattr(module, name, None) is not obj:
            continue
        try:
            analyzer = ModuleAnalyzer.for_module(modname)
            analyzer.analyze()
        except PycodeError:
            continue
        doc = analyzer.attr_docs.get(("", name))
        if doc:
            return list(doc)
    return None


def _exported(name: str, obj: Any) -> bool:
    """Whether a tutorial_kit module lists ``name`` in its ``__all__`` and holds ``obj`` under it."""
    return any(
        modname.startswith(PACKAGE) and name in (getattr(module, "__all__", None) or ())
        and getattr(module, name, None) is obj
        for modname, module in list(sys.modules.items())
        if module is not None
    )


class _UnquotedTypes:
    """Mixin for autodoc documenters: a ``:type:`` written as a string (``'pd.DataFrame'``) is shown unquoted."""

    def add_line(self, line: str, source: str, *lineno: int) -> None:
        stripped = line.lstrip()
        if stripped.startswith(":type: ") and str(getattr(self, "modname", "")).startswith(PACKAGE):
            indent = line[: len(line) - len(stripped)]
            line = f"{indent}:type: {_unquote_text(stripped[len(':type: '):])}"
        super().add_line(line, source, *lineno)


def _documenters():
    from sphinx.ext.autodoc import AttributeDocumenter, PropertyDocumenter

    class UnquotedAttributeDocumenter(_UnquotedTypes, AttributeDocumenter):
        pass

    class UnquotedPropertyDocumenter(_UnquotedTypes, PropertyDocumenter):
        pass

    return [_data_documenter(), UnquotedAttributeDocumenter, UnquotedPropertyDocumenter]


def _data_documenter():
    from sphinx.ext.autodoc import DataDocumenter

    class NamespaceDataDocumenter(_UnquotedTypes, DataDocumenter):
        """A module-level constant of a tutorial_kit namespace, documented where it is defined."""

        @classmethod
        def can_document_member(cls, member, membername, isattr, parent) -> bool:
            if DataDocumenter.can_document_member(member, membername, isattr, parent):
                return True
            from sphinx.ext.autodoc import ModuleDocumenter

            return (isinstance(parent, ModuleDocumenter) and str(parent.modname).startswith(PACKAGE)
                    and _exported(membername, member) and _attribute_doc(membername, member) is not None)

        def get_module_comment(self, attrname: str) -> list[str] | None:
            comment = super().get_module_comment(attrname)
            if comment or not str(self.modname).startswith(PACKAGE):
                return comment
            return _attribute_doc(attrname, self.object)

        def should_suppress_value_header(self) -> bool:
            from sphinx.util.inspect import object_description

            if super().should_suppress_value_header():
                return True
            if not str(self.modname).startswith(PACKAGE):
                return False
            try:
                return len(object_description(self.object)) > MAX_VALUE_CHARS
            except ValueError:
                return True

    return NamespaceDataDocumenter


def _field_is_documented(name: str, getter: Any) -> bool:
    """Whether the named-tuple field ``getter`` has a docstring of its own in its class body."""
    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    for modname, module in list(sys.modules.items()):
        if not modname.startswith(PACKAGE) or module is None:
            continue
        for owner in vars(module).values():
            if isinstance(owner, type) and hasattr(owner, "_fields") and owner.__dict__.get(name) is getter:
                try:
                    analyzer = ModuleAnalyzer.for_module(owner.__module__)
                    analyzer.analyze()
                except PycodeError:
                    return False
                return (owner.__qualname__, name) in analyzer.attr_docs
    return False


def _skip_member(app, what: str, name: str, obj: Any, skip: bool, options) -> bool | None:
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number") and not _field_is_documented(name, obj):
        return True  # a named-tuple field: described in the class docstring's Attributes section
    if what == "module" and skip and _exported(name, obj) and _attribute_doc(name, obj):
        return False  # a constant re-exported by a namespace, with its docstring in the defining module
    return None


# --------------------------------------------------------------------------- napoleon and signatures


def _napoleon_except_plain_text(app) -> None:
    """Run napoleon on every docstring except those of constants and attributes (see the module docstring)."""
    listeners = app.events.listeners.get("autodoc-process-docstring", [])
    for listener in list(listeners):
        handler = listener.handler
        if getattr(handler, "__module__", "") == "sphinx.ext.napoleon" and handler.__name__ == "_process_docstring":
            app.disconnect(listener.id)

            def process(app, what, name, obj, options, lines, _napoleon=handler):
                if what in PLAIN_TEXT and name.startswith(PACKAGE):
                    return
                _napoleon(app, what, name, obj, options, lines)
                if name.startswith(PACKAGE):  # the types napoleon takes from annotations, unquoted
                    for i, line in enumerate(lines):
                        stripped = line.lstrip()
                        if stripped.startswith(":type: "):
                            indent = line[: len(line) - len(stripped)]
                            lines[i] = f"{indent}:type: {_unquote_text(stripped[len(':type: '):])}"

            app.connect("autodoc-process-docstring", process, priority=listener.priority)


class _Unquoter(ast.NodeTransformer):
    """Replace string constants inside an annotation by the expression they spell."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str):
            try:
                return self.visit(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return node
        return node


def _unquote(node: ast.expr | None) -> ast.expr | None:
    return None if node is None else _Unquoter().visit(node)


def _unquote_text(annotation: str) -> str:
    """``"'pd.DataFrame'"`` -> ``"pd.DataFrame"``; ``"tuple['a.B', 'a.B']"`` -> ``"tuple[a.B, a.B]"``."""
    try:
        return ast.unparse(_unquote(ast.parse(annotation, mode="eval").body))
    except SyntaxError:
        return annotation


def _unquote_signature(app, what, name, obj, options, signature, return_annotation):
    if not name.startswith(PACKAGE) or not signature:
        return None
    try:
        tree = ast.parse(f"def _f{signature}: pass")
    except SyntaxError:
        return None
    args = tree.body[0].args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = _unquote(arg.annotation)
    signature = f"({ast.unparse(args)})"
    if return_annotation:
        return_annotation = _unquote_text(return_annotation)
    return signature, return_annotation


# --------------------------------------------------------------------------- cross-references


def _bases(module: str, classname: str) -> list[type]:
    """The classes of the MRO of ``module.classname`` (empty when it cannot be imported)."""
    import importlib

    try:
        cls = getattr(importlib.import_module(module), classname.split(".")[0])
    except (ImportError, AttributeError):
        return []
    return list(getattr(cls, "__mro__", ()))


def _resolve(app, env, node, contnode):
    """Resolve a tutorial_kit name to the namespace where book/api.md documents it (a unique match only)."""
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module = node.get("py:module") or ""
    if not target or not (target.startswith(PACKAGE) or module.startswith(PACKAGE)):
        return None
    domain = env.get_domain("py")
    scope = target if target.startswith(PACKAGE) else module
    namespace = ".".join(scope.split(".")[:2])
    if node.get("reftype") == "mod":
        # a submodule: its public names are documented in the section of its namespace
        entry = domain.modules.get(namespace) if target.startswith(namespace + ".") else None
        if entry is None:
            return None
        return make_refnode(app.builder, node.get("refdoc"), entry.docname, entry.node_id, contnode, namespace)
    short = target.rsplit(".", 1)[-1]
    candidates = [name for name in domain.objects if name.startswith(namespace + ".") and name.rsplit(".", 1)[-1] == short]
    if len(candidates) > 1 and node.get("py:class"):
        # a method or attribute named from inside a class: the one it inherits, nearest base first
        inherited = [f"{namespace}.{base.__name__}.{short}" for base in _bases(module, node.get("py:class"))]
        candidates = [name for name in inherited if name in domain.objects][:1]
    if len(candidates) != 1:
        return None
    obj = domain.objects[candidates[0]]
    return make_refnode(app.builder, node.get("refdoc"), obj.docname, obj.node_id, contnode, candidates[0])


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    for documenter in _documenters():
        app.add_autodocumenter(documenter, override=True)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-signature", _unquote_signature)
    app.connect("missing-reference", _resolve)
    app.connect("builder-inited", _napoleon_except_plain_text)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
