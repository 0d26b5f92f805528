"""What run refuses is decided while the plan is built: hooks, wrappers, config sections."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import plan_of
from pydantic import BaseModel, Field

from ksi_host._config import HostConfig
from ksi_host._describe import Described
from ksi_host._lifecycle import Host
from ksi_host._pipeline import boot
from ksi_host._vet import vet
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginMetadata


class Settings(BaseModel):
    setting: str = "default"
    retries: int = Field(default=3, ge=0)


class Configured(BasePlugin):
    config_model = Settings

    @hookimpl
    def ksi_startup(self) -> None:
        pass


class Typo(BasePlugin):
    @hookimpl
    def ksi_handle_events(self, event_name, data, context):  # the typo under test
        return None


class BadArgument(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name, payload):
        return None


class Fine(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name, data):
        return {"by": "fine"}


def _vetted(*plugins: BasePlugin, sections: dict[str, Any] | None = None) -> Described:
    return vet(Described(specs=plan_of(*plugins).order), sections or {})


def _reasons(described: Described) -> dict[str, Any]:
    return {e.name: e.reason for e in described.excluded}


def test_a_misspelt_hook_is_refused_naming_the_hook_file_and_line() -> None:
    described = _vetted(Typo(PluginMetadata(name="typo")), Fine(PluginMetadata(name="fine")))
    assert [spec.name for spec in described.specs] == ["fine"]
    reason = _reasons(described)["typo"]
    assert reason.code == "hook-mismatch"
    assert reason.hook == "ksi_handle_events"
    assert "rename it to 'ksi_handle_event'" in reason.hint
    assert reason.path == __file__
    lines = Path(reason.path).read_text().splitlines()
    assert "def ksi_handle_events" in "".join(lines[reason.line - 1 : reason.line + 1])


def test_an_argument_the_spec_does_not_declare_is_refused() -> None:
    reason = _reasons(_vetted(BadArgument(PluginMetadata(name="badarg"))))["badarg"]
    assert reason.code == "hook-mismatch"
    assert "payload" in reason.message
    assert reason.hook == "ksi_handle_event"


@pytest.mark.parametrize("hook", ["ksi_filter_event", "ksi_handle_event"])
def test_wrapper_hooks_are_refused_with_a_reason(hook: str) -> None:
    class Wrapping(BasePlugin):
        pass

    def wrapper(self, event_name, data, context=None):
        return (yield)

    setattr(Wrapping, hook, hookimpl(wrapper=True)(wrapper))
    reason = _reasons(_vetted(Wrapping(PluginMetadata(name="wrapping"))))["wrapping"]
    assert reason.code == "unsupported-hook"
    assert f"implements {hook} as a wrapper" in reason.message
    assert reason.hook == hook


def test_an_invalid_config_section_is_that_plugins_problem() -> None:
    described = _vetted(
        Configured(PluginMetadata(name="my_plugin")),
        Fine(PluginMetadata(name="other")),
        sections={"my-plugin": {"retries": -1}},
    )
    assert [spec.name for spec in described.specs] == ["other"]
    reason = _reasons(described)["my_plugin"]
    assert reason.code == "config-invalid"
    assert reason.message.startswith("config section [my_plugin] does not validate: retries")
    assert "fix the [my_plugin] table" in reason.hint


def test_a_valid_section_passes() -> None:
    described = _vetted(
        Configured(PluginMetadata(name="my_plugin")), sections={"my-plugin": {"retries": 1}}
    )
    assert described.excluded == ()


def test_run_excludes_what_the_plan_refuses_before_starting_anything(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "typo.py").write_text(
        "from ksi_host import BasePlugin, PluginMetadata, hookimpl\n"
        "class P(BasePlugin):\n"
        "    @hookimpl\n"
        "    def ksi_handle_events(self, event_name, data, context):\n"
        "        return None\n"
        "plugin = P(PluginMetadata(name='typo'))\n"
    )
    env = {"KSI_HOME": str(tmp_path / "home"), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    host = boot(HostConfig(), paths=[folder], env=env)

    async def main() -> Host:
        async with host:
            return host

    asyncio.run(main())
    [entry] = [e for e in host.entries() if e.name == "typo"]
    assert (entry.status, entry.reason and entry.reason.code) == ("excluded", "hook-mismatch")
