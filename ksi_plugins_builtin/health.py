"""``system:health``: is the daemon up, since when, how many plugins run, and which failed.

``healthy`` only when every plugin the plan would run is running; ``degraded``, with
the names under ``failed``, when any of them failed to start.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any, Final

from ksi_host import (
    HostView,
    PluginCapabilities,
    PluginStatus,
    __version__,
    hookimpl,
)
from ksi_plugins_builtin._host import HostReporter
from ksi_plugins_builtin._metadata import builtin_metadata

__all__ = ["HealthPlugin", "plugin", "plugin_counts"]

_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))
"""Three digits of the microseconds, looked up: a format spec costs more per call."""


def plugin_counts(host: HostView) -> dict[str, int]:
    """Count the host's plugins by status, plus the total."""
    return _count(host.status())


def _count(statuses: tuple[PluginStatus, ...]) -> dict[str, int]:
    by_status = Counter(status.status for status in statuses)
    return {"total": len(statuses), **dict(sorted(by_status.items()))}


class HealthPlugin(HostReporter):
    """The guide's health check, with uptime and plugin counts."""

    def __init__(self) -> None:
        super().__init__(
            metadata=builtin_metadata(
                "health", "system:health: status, timestamp, uptime, version, pid, plugin counts"
            ),
            capabilities=PluginCapabilities(commands=["system:health"]),
        )
        self._started = time.monotonic_ns()
        self._pid = os.getpid()
        self._counted: tuple[PluginStatus, ...] = ()
        self._counts: dict[str, int] = {}
        self._second = -1
        self._second_text = ""

    @hookimpl
    def ksi_startup(self) -> dict[str, str]:
        self._started = time.monotonic_ns()
        self._pid = os.getpid()
        return {"status": "plugin_started"}

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "system:health":
            return None
        answer: dict[str, Any] = {
            "status": "healthy",
            "timestamp": self._timestamp(),
            # Whole milliseconds, in integers: cheaper than round(seconds, 3).
            "uptime": (time.monotonic_ns() - self._started) // 1_000_000 / 1000,
            "version": __version__,
            "pid": self._pid,
        }
        if self.host is not None:
            counts = dict(self._plugin_counts(self.host))
            answer["plugins"] = counts
            if counts.get("failed"):
                answer["status"] = "degraded"
                answer["failed"] = [s.name for s in self.host.status() if s.status == "failed"]
        return answer

    def _timestamp(self) -> str:
        """Now in ISO 8601 UTC with microseconds; the date and time are formatted once a second."""
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f"{self._second_text}{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}+00:00"

    def _plugin_counts(self, host: HostView) -> dict[str, int]:
        """:func:`plugin_counts`, counted again only when a plugin's status changed."""
        statuses = host.status()
        if statuses is not self._counted:  # the host keeps its tuple while nothing changes
            if statuses != self._counted:  # the same status objects compare by identity
                self._counts = _count(statuses)
            self._counted = statuses  # equal but new objects would compare field by field
        return self._counts


plugin = HealthPlugin()
