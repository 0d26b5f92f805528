"""``system:health``: is the daemon up, since when, and how many plugins run."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from ksi_host import __version__
from ksi_host._protocol import jsonable
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__all__ = ["HealthPlugin", "plugin", "plugin_counts"]


def plugin_counts(host: object) -> dict[str, int] | None:
    """Count the host's plugins by status; ``None`` when the host cannot say."""
    status = getattr(host, "status", None)
    if not callable(status):
        return None
    report = jsonable(status())
    entries = report.get("plugins") if isinstance(report, dict) else report
    if not isinstance(entries, list):
        return None
    by_status = Counter(
        str(entry.get("status", "unknown")) for entry in entries if isinstance(entry, dict)
    )
    return {"total": len(entries), **dict(sorted(by_status.items()))}


class HealthPlugin(BasePlugin):
    """The guide's health check, with uptime and plugin counts."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(
                name="health",
                version=__version__,
                description="system:health: status, timestamp, uptime, plugin counts",
            ),
            capabilities=PluginCapabilities(commands=["system:health"]),
        )
        self._host: object = None
        self._started = time.monotonic()

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        self._host = context.get("host")

    @hookimpl
    def ksi_startup(self) -> dict[str, str]:
        self._started = time.monotonic()
        return {"status": "plugin_started"}

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "system:health":
            return None
        answer: dict[str, Any] = {
            "status": "healthy",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "uptime": round(time.monotonic() - self._started, 3),
        }
        counts = plugin_counts(self._host)
        if counts is not None:
            answer["plugins"] = counts
        return answer


plugin = HealthPlugin()
