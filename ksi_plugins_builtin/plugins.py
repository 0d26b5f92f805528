"""``plugin:list``: the running plan, each plugin's verdict in the shape every view shares."""

from __future__ import annotations

from typing import Any

from ksi_host import PluginCapabilities, PluginContext, PluginMetadata, __version__, hookimpl
from ksi_host._for_builtins import Host, host_of
from ksi_host._schema import SCHEMA_VERSION, warning_reports
from ksi_plugins_builtin._host import HostReporter, no_host

__all__ = ["PluginsPlugin", "plugin"]


class PluginsPlugin(HostReporter):
    """Lets a client see what the host loaded, and why anything is not running."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(
                name="plugins",
                version=__version__,
                description="plugin:list: the running plan and each plugin's status",
            ),
            capabilities=PluginCapabilities(commands=["plugin:list"]),
        )

    _host: Host | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        HostReporter.ksi_plugin_context(self, context)
        self._host = host_of(context)  # the plan and its warnings, which HostView does not show

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "plugin:list":
            return None
        host = self._host
        if host is None:
            return no_host("plugin:list")
        return {
            "schema_version": SCHEMA_VERSION,
            "command": "plugin:list",
            "plugins": [entry.model_dump(mode="json") for entry in host.entries()],
            "warnings": [w.model_dump(mode="json") for w in warning_reports(host.plan.warnings)],
        }


plugin = PluginsPlugin()
