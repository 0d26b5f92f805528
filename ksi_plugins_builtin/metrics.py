"""``system:metrics``: what every plugin's ``ksi_metrics_collected`` gathered, plus the host's."""

from __future__ import annotations

import inspect
from typing import Any

from ksi_host import __version__
from ksi_host._protocol import ErrorCode, error_data, jsonable
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

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
        self._host: Any = None

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        self._host = context.get("host")

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "system:metrics":
            return None
        return self._collect()

    async def _collect(self) -> dict[str, Any]:
        collect = getattr(self._host, "metrics", None)
        if not callable(collect):
            return error_data(ErrorCode.UNAVAILABLE, "this host does not collect metrics")
        metrics = collect()
        if inspect.isawaitable(metrics):
            metrics = await metrics
        return {"metrics": jsonable(metrics)}


plugin = MetricsPlugin()
