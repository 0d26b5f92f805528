"""What the built-ins that report on the host share: finding it, and saying when it is missing."""

from __future__ import annotations

from typing import Any

from ksi_host._lifecycle import Host
from ksi_host._protocol import ErrorCode, error_data

__all__ = ["host_in", "no_host"]


def host_in(context: dict[str, Any]) -> Host | None:
    """The ``Host`` a plugin runs under, or None on a bare ``PluginManager``."""
    host = context.get("host")
    return host if isinstance(host, Host) else None


def no_host(event: str) -> dict[str, Any]:
    """The ``UNAVAILABLE`` answer of an event that needs the host."""
    return error_data(
        ErrorCode.UNAVAILABLE,
        f"{event} needs a ksi_host Host in the plugin context (context['host']); "
        "run the plugin under ksi-host run or a Host, not on a bare PluginManager",
    )
