"""``plugin:list`` and ``system:events``: the running host's verdicts and what it answers.

Both render the shape every view shares: ``plugin:list`` the one ``ksi-host plugins
--json`` prints, ``system:events`` the one ``ksi-host events --json`` prints.
"""

from __future__ import annotations

from typing import Any

from ksi_host import PluginCapabilities, PluginContext, PluginMetadata, __version__, hookimpl
from ksi_host._for_builtins import Host, event_catalog, host_of
from ksi_plugins_builtin._host import HostReporter, no_host

__all__ = ["PluginsPlugin", "plugin"]


class PluginsPlugin(HostReporter):
    """Lets a client see what the host loaded, and why anything is not running."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(
                name="plugins",
                version=__version__,
                description="plugin:list: the running plan and each plugin's status; "
                "system:events: the events the running plugins declare",
            ),
            capabilities=PluginCapabilities(commands=["plugin:list", "system:events"]),
        )

    _host: Host | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        HostReporter.ksi_plugin_context(self, context)
        self._host = host_of(context)  # the plan and its warnings, which HostView does not show

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name not in ("plugin:list", "system:events"):
            return None
        if self.host is None:
            return no_host(event_name)
        if event_name == "plugin:list":
            return self.host.plugin_list()
        host = self._host
        if host is None:
            return no_host(event_name)
        return event_catalog(host.plan, host.entries()).model_dump(mode="json")


plugin = PluginsPlugin()
