"""``__all__``: complete in every public module, and naming only what exists in every module.

Its order is ruff's job (RUF022 sorts it isort-style in every module).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ksi_host
from ksi_host import hookspecs

MODULES = [
    "ksi_host",
    *(
        info.name
        for info in pkgutil.walk_packages(ksi_host.__path__, "ksi_host.")
        if info.name != "ksi_host.__main__"  # runs the command line when imported
    ),
]
PUBLIC = [name for name in MODULES if not any(part.startswith("_") for part in name.split("."))]
HOOKS = {name for name, value in vars(hookspecs).items() if hasattr(value, "ksi_spec")}
"""The hook specs themselves: defined in hookspecs, used by pluggy, never imported by name."""


def test_the_public_modules_are_the_guides() -> None:
    assert PUBLIC == [
        "ksi_host",
        "ksi_host.context",
        "ksi_host.errors",
        "ksi_host.events",
        "ksi_host.hookspecs",
        "ksi_host.plugin_base",
        "ksi_host.plugin_manager",
        "ksi_host.plugin_types",
        "ksi_host.replies",
        "ksi_host.status",
        "ksi_host.testing",
    ]


def test_the_plugin_contract_is_importable_from_ksi_host() -> None:
    contract = {
        "PluginContext",
        "HostView",
        "PluginStatus",
        "Origin",
        "Reason",
        "ReasonCode",
        "SourceKind",
        "Status",
        "ErrorCode",
        "error_reply",
        "EventBus",
        "KsiPaths",
    }
    assert contract <= set(ksi_host.__all__)


def _runtime_imports(tree: ast.AST) -> list[ast.ImportFrom]:
    """Every ``from ... import`` that runs: those under ``if TYPE_CHECKING:`` only name types."""
    found: list[ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            found.extend(imp for child in node.orelse for imp in _runtime_imports(child))
            continue
        if isinstance(node, ast.ImportFrom):
            found.append(node)
        found.extend(_runtime_imports(node))
    return found


def test_the_built_in_plugins_use_only_public_modules() -> None:
    """... and ksi_host._for_builtins, which gives the host's own transports what they need."""
    builtins = Path(ksi_host.__file__).parents[1] / "ksi_plugins_builtin"
    private = [
        f"{path.name}:{node.lineno} imports {node.module}"
        for path in sorted(builtins.rglob("*.py"))
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
        if node.module
        and node.module.startswith("ksi_host")
        and any(part.startswith("_") for part in node.module.split("."))
        and node.module != "ksi_host._for_builtins"
    ]
    assert private == []


@pytest.mark.parametrize("name", PUBLIC)
def test_all_of_a_public_module_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    assert defined - HOOKS <= set(module.__all__)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_only_what_the_module_has(name: str) -> None:
    module = importlib.import_module(name)
    assert [attr for attr in module.__all__ if not hasattr(module, attr)] == []


@pytest.mark.parametrize("name", [name for name in MODULES if name != "ksi_host._pytest_plugin"])
def test_the_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), report=False)
    assert result.failed == 0


def test_every_public_name_of_ksi_host_is_the_one_its_module_defines() -> None:
    """``ksi_host`` imports each name's module on first use; the object is the module's own."""
    homes = ksi_host._HOMES
    assert sorted([*homes, "__version__"]) == sorted(ksi_host.__all__)
    for name, home in homes.items():
        assert getattr(ksi_host, name) is getattr(importlib.import_module(home), name)
    assert set(ksi_host.__all__) <= set(dir(ksi_host))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = ksi_host.Nope  # type: ignore[attr-defined]


def test_importing_ksi_host_imports_none_of_its_parts() -> None:
    """``import ksi_host`` is the first thing every command does: it must cost nothing.

    Only the few lines that import a name on its first use come along.
    """
    code = (
        "import sys, ksi_host\n"
        "print(sorted(m for m in sys.modules if m.startswith(('ksi', 'pydantic'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['ksi_host', 'ksi_host._lazy_names']"
