"""``plugin:list``: the running plan, each plugin with its version, origin, status and reason."""

from __future__ import annotations

from typing import Any

from ksi_host import __version__
from ksi_host._lifecycle import Host
from ksi_host._protocol import ErrorCode, error_data
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__all__ = ["PluginsPlugin", "plugin"]


class PluginsPlugin(BasePlugin):
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
        self._host: Host | None = None

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        host = context.get("host")
        self._host = host if isinstance(host, Host) else None

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "plugin:list":
            return None
        if self._host is None:
            return error_data(
                ErrorCode.UNAVAILABLE,
                "plugin:list needs a ksi_host Host in the plugin context (context['host']); "
                "run the plugin under ksi-host run or a Host, not on a bare PluginManager",
            )
        return {"plugins": [status.as_dict() for status in self._host.status()]}


plugin = PluginsPlugin()
