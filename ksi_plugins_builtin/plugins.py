"""``plugin:list``: the running plan, each plugin with its version, source, status and reason."""

from __future__ import annotations

from typing import Any

from ksi_host import __version__
from ksi_host._protocol import ErrorCode, error_data, jsonable
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
        self._host: Any = None

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        self._host = context.get("host")

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "plugin:list":
            return None
        if self._host is None or not callable(getattr(self._host, "status", None)):
            return error_data(ErrorCode.UNAVAILABLE, "this host does not report its plugins")
        report = jsonable(self._host.status())
        if isinstance(report, list):
            return {"plugins": report}
        if isinstance(report, dict):
            return report
        return error_data(ErrorCode.INTERNAL_ERROR, "the host's status is not a list or object")


plugin = PluginsPlugin()
