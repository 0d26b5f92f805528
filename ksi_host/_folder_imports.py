"""Plugin folders as import roots that never shadow anything: helpers and packages import.

A plugin in a folder may import a helper module beside it (``import helpers``), and a
package plugin its own submodules by relative or absolute import (``from mypkg import
impl``). For that, each folder a plugin comes from is searched for top-level modules,
but only by a finder placed *after* every other one on ``sys.meta_path``: the standard
library and installed packages always win, so a folder's ``json.py`` or ``requests/``
never replaces the real one. Earlier folders win over later ones (source precedence).
A helper found here is held to the trust rule like the plugin that imports it. A
folder module that binds no ``plugin`` and uses no ``hookimpl`` is such a helper, not
a plugin: it is imported (so its errors show) but not reported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Final

from ksi_host._trust import TrustPolicy, distrust

__all__ = ["add_folder", "import_own_name", "is_helper"]


class _FolderFinder(importlib.abc.MetaPathFinder):
    """Finds top-level modules in plugin folders, consulted after every other finder."""

    def __init__(self) -> None:
        self.folders: dict[Path, TrustPolicy] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if path is not None or "." in fullname:
            return None
        for folder, trust in self.folders.items():
            package = folder / fullname / "__init__.py"
            module = folder / f"{fullname}.py"
            for file in (package, module):
                if not file.is_file():
                    continue
                unsafe = distrust(file, trust) or distrust(file.parent, trust)
                if unsafe is not None:
                    raise ImportError(
                        f"module {fullname!r} from plugin folder {folder} is not imported: "
                        f"{unsafe.problem}; {unsafe.hint}",
                        name=fullname,
                        path=str(file),
                    )
                where = [str(file.parent)] if file is package else None
                return importlib.util.spec_from_file_location(
                    fullname, file, submodule_search_locations=where
                )
        return None


_FINDER: Final = _FolderFinder()


def add_folder(folder: Path, trust: TrustPolicy) -> None:
    """Let plugins import top-level modules from ``folder``, after everything installed."""
    _FINDER.folders.setdefault(folder.resolve(), trust)
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)


def import_own_name(file: Path) -> ModuleType | None:
    """A folder module or package imported under its own name, or None when that is taken.

    Under its own name, a helper a plugin imports is the module discovery already
    imported, and ``import mypkg.impl`` inside a package finds the same package. When
    the standard library, an installed module or an earlier folder owns the name, the
    caller falls back to a private name (relative imports still work there).
    """
    name = file.parent.name if file.name == "__init__.py" else file.stem
    if not name.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or Path(spec.origin).resolve() != file.resolve():
        return None
    return importlib.import_module(name)


def is_helper(file: Path) -> bool:
    """Whether a folder module without ``plugin`` is a helper: it uses no ``hookimpl``.

    One that does is a plugin missing its ``plugin = ...`` line, and is reported; so
    is a package with a ``plugin.py`` (the template's layout) whose ``plugin`` is missing.
    """
    if file.name == "__init__.py" and (file.parent / "plugin.py").is_file():
        return False
    try:
        return b"hookimpl" not in file.read_bytes()
    except OSError:
        return False
