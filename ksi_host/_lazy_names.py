"""A module's names imported on first use (PEP 562), for modules that re-export many.

``ksi_host`` and ``_for_builtins`` each name the module every public name lives in;
importing them costs nothing until a name is used, and a used name is kept in the
module's globals, so the lookup happens once.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_getattr"]


def lazy_getattr(module: str, homes: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``homes[name]`` and keeps ``name`` from it."""

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
