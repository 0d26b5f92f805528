"""The hook specs are typed, and BasePlugin repeats them so mypy checks a plugin's hooks."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ksi_host import BasePlugin, PluginManager, PluginMetadata, hookspecs

HOOKS = sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "ksi_spec"))


def test_there_are_the_guides_seven_hooks() -> None:
    assert HOOKS == [
        "ksi_filter_event",
        "ksi_handle_event",
        "ksi_metrics_collected",
        "ksi_plugin_context",
        "ksi_shutdown",
        "ksi_startup",
        "ksi_validate_event",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_base_plugin_declares_each_hook_exactly_as_its_spec(hook: str) -> None:
    spec = inspect.signature(getattr(hookspecs, hook))
    declared = inspect.signature(getattr(BasePlugin, hook))
    assert next(iter(declared.parameters)) == "self"
    assert list(declared.parameters.values())[1:] == list(spec.parameters.values())
    assert declared.return_annotation == spec.return_annotation


def test_the_declarations_are_not_hook_implementations() -> None:
    class Quiet(BasePlugin):
        pass

    manager = PluginManager()
    assert not manager.pm.has_hookimpls(Quiet(PluginMetadata(name="quiet")))


TYPED_PLUGIN = """
from typing import Any

from ksi_host import BasePlugin, PluginContext, PluginStatus, Reason, ReasonCode, Status, hookimpl


class Good(BasePlugin):
    @hookimpl
    async def ksi_handle_event(
        self, event_name: str, data: dict[str, Any], context: PluginContext
    ) -> dict[str, Any] | None:
        return {"seen": context.plugin}

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        context.logger.info("ready")


class Bad(BasePlugin):
    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        pass

    @hookimpl
    def ksi_handle_event(
        self, event_name: str, data: dict[str, Any], context: PluginContext
    ) -> list[str]:
        return []

    @hookimpl
    def ksi_validate_event(self, event_name: str, data: dict[str, Any]) -> bool:
        return True


def failed(statuses: tuple[PluginStatus, ...]) -> dict[str, str]:
    return {s.name: s.reason.code for s in statuses if s.status == "failed" and s.reason}


def shout(status: PluginStatus) -> str:
    return status.version.upper()


# The public names of what a status says: no private module needed to annotate with them.
from ksi_host import Origin, SourceKind

WORKING: frozenset[Status] = frozenset({"running", "lazy"})


def why(status: PluginStatus) -> ReasonCode | None:
    return status.reason.code if status.reason and status.status not in WORKING else None


def where(origin: Origin) -> SourceKind:
    return origin.kind


def root_message(reason: Reason) -> str:
    return reason.root.message


def misspelt(status: PluginStatus) -> bool:
    return status.status == "runing"


UNKNOWN: ReasonCode = "startup-faild"
"""


@pytest.mark.slow
def test_mypy_strict_checks_a_plugins_hook_signatures_and_what_it_reads(tmp_path: Path) -> None:
    module = tmp_path / "typed_plugin.py"
    module.write_text(textwrap.dedent(TYPED_PLUGIN))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(module)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    [unchecked] = [line for line in errors if "[union-attr]" in line]
    errors.remove(unchecked)
    [misspelt_status] = [line for line in errors if "[comparison-overlap]" in line]
    [unknown_code] = [line for line in errors if "[assignment]" in line]
    errors.remove(misspelt_status)
    errors.remove(unknown_code)
    assert misspelt_status.split(":")[1] == "62", result.stdout
    assert "Literal['runing']" in misspelt_status
    assert unknown_code.split(":")[1] == "65", result.stdout
    assert "Literal['startup-faild']" in unknown_code
    assert unchecked.split(":")[1] == "40", result.stdout
    assert 'Item "None" of "str | None" has no attribute "upper"' in unchecked
    flagged = [
        (line.split(":")[1], line.split('"')[1 if "Argument" in line else 3]) for line in errors
    ]
    assert flagged == [
        ("21", "ksi_plugin_context"),
        ("25", "ksi_handle_event"),
        ("31", "ksi_validate_event"),
    ], result.stdout
    assert all('supertype "ksi_host.plugin_base.BasePlugin"' in line for line in errors)
