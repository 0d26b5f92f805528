"""What the built-ins that report on the host share: finding it, and saying when it is missing."""

from __future__ import annotations

from typing import Any

from ksi_host._lifecycle import Host
from ksi_host._protocol import ErrorCode, error_data
from ksi_host.plugin_base import BasePlugin, hookimpl

__all__ = ["HostReporter", "no_host"]


class HostReporter(BasePlugin):
    """A built-in that answers from the ``Host`` it runs under (None on a bare manager)."""

    host: Host | None = None

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        host = context.get("host")
        self.host = host if isinstance(host, Host) else None


def no_host(event: str) -> dict[str, Any]:
    """The ``UNAVAILABLE`` answer of an event that needs the host."""
    return error_data(
        ErrorCode.UNAVAILABLE,
        f"{event} needs a ksi_host Host in the plugin context (context['host']); "
        "run the plugin under ksi-host run or a Host, not on a bare PluginManager",
    )
