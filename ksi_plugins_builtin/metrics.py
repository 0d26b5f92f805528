"""``system:metrics``: what every plugin's ``ksi_metrics_collected`` gathered, plus the host's."""

from __future__ import annotations

from typing import Any

from ksi_host import __version__
from ksi_host._lifecycle import Host
from ksi_host._protocol import jsonable
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from ksi_plugins_builtin._host import host_in, no_host

__all__ = ["MetricsPlugin", "plugin"]


class MetricsPlugin(BasePlugin):
    """Exposes the host's metrics to clients."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(
                name="metrics",
                version=__version__,
                description="system:metrics: metrics gathered from every plugin",
            ),
            capabilities=PluginCapabilities(commands=["system:metrics"]),
        )
        self._host: Host | None = None

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        self._host = host_in(context)

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "system:metrics":
            return None
        return self._collect()

    async def _collect(self) -> dict[str, Any]:
        if self._host is None:
            return no_host("system:metrics")
        return {"metrics": jsonable(await self._host.metrics())}


plugin = MetricsPlugin()
