"""Lazy names for subpackages: ``tk.models.ScGen`` imports ``tutorial_kit.models.scgen`` on first use.

Keeps ``import tutorial_kit`` free of torch, scanpy, POT and scgen until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_names(package: str, where: dict[str, str]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` of a package whose names live in submodules.

    Args:
        package: the package's ``__name__``.
        where: public name -> submodule (relative to ``package``) that defines it.

    Example:
        >>> all_, getattr_, dir_ = lazy_names("tutorial_kit", {"epochs": "config"})
        >>> getattr_("epochs").__name__, dir_()
        ('epochs', ['epochs'])
    """
    names = sorted(where)

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            module = importlib.import_module(package)
            setattr(module, name, value)  # cache: the next access skips __getattr__
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return names

    return names, __getattr__, __dir__
