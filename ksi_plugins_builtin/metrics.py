"""``system:metrics``: what every plugin's ``ksi_metrics_collected`` gathered, plus the host's."""

from __future__ import annotations

from typing import Any

from ksi_host import PluginCapabilities, hookimpl
from ksi_host.replies import jsonable
from ksi_plugins_builtin._host import HostReporter, no_host
from ksi_plugins_builtin._metadata import builtin_metadata

__all__ = ["MetricsPlugin", "plugin"]


class MetricsPlugin(HostReporter):
    """Exposes the host's metrics to clients."""

    def __init__(self) -> None:
        super().__init__(
            metadata=builtin_metadata(
                "metrics", "system:metrics: metrics gathered from every plugin"
            ),
            capabilities=PluginCapabilities(commands=["system:metrics"]),
        )

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "system:metrics":
            return None
        return self._collect()

    async def _collect(self) -> dict[str, Any]:
        if self.host is None:
            return no_host("system:metrics")
        return {"metrics": jsonable(await self.host.metrics())}


plugin = MetricsPlugin()
