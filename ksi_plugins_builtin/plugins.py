"""``plugin:list``: the running plan, each plugin's verdict in the shape every view shares."""

from __future__ import annotations

from typing import Any

from ksi_host import PluginCapabilities, PluginMetadata, __version__, hookimpl
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

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "plugin:list":
            return None
        if self.host is None:
            return no_host("plugin:list")
        return self.host.plugin_list()


plugin = PluginsPlugin()
