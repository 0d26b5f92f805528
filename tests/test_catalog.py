"""``ksi-host events``: every declared event with its plugin, read off the plan."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ksi_host._catalog import EventCatalog
from ksi_host._cli import cli
from tests.dists import plugin_source


def _env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "HOME": str(tmp_path),
        "KSI_HOME": str(tmp_path / "ksi-home"),
        "KSI_PLUGIN_PATH": None,
        "KSI_DISABLE_PLUGINS": None,
        "KSI_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


def test_builtin_events_are_listed_with_their_plugin(runner, tmp_path: Path):
    result = runner.invoke(cli, ["events"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "system:health   health" in lines
    assert "state:set       state" in lines
    assert not any("unix_socket" in line for line in lines)


@pytest.mark.usefixtures("site_dir")
def test_user_plugins_namespaces_and_catch_alls_are_listed(runner, tmp_path: Path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "sees_all.py").write_text(plugin_source("sees_all", version="1.0"))
    (folder / "greeter.py").write_text(
        textwrap.dedent(
            """\
            from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


            class Greeter(BasePlugin):
                @hookimpl
                def ksi_handle_event(self, event_name, data, context):
                    return None


            plugin = Greeter(
                PluginMetadata(name="greeter", description="says hello"),
                PluginCapabilities(event_namespaces=["/greet"], commands=["hello:world"]),
            )
            """
        )
    )
    result = runner.invoke(
        cli, ["events", "--json", "--plugin-path", str(folder)], env=_env(tmp_path)
    )
    assert result.exit_code == 0, result.output
    catalog = EventCatalog.model_validate_json(result.output)
    ours = [e for e in catalog.events if e.plugin == "greeter"]
    assert [(e.event, e.description) for e in ours] == [
        ("greet:*", "says hello"),
        ("hello:world", "says hello"),
    ]
    assert catalog.events == sorted(catalog.events, key=lambda e: (e.event, e.plugin))
    assert catalog.catch_all == ["sees_all"]
