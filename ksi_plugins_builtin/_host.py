"""What the built-ins that report on the host share: its view, and saying when it is missing."""

from __future__ import annotations

from typing import Any

from ksi_host import BasePlugin, ErrorCode, HostView, PluginContext, error_reply, hookimpl

__all__ = ["HostReporter", "no_host"]


class HostReporter(BasePlugin):
    """A built-in that answers from the host it runs under (None on a bare manager)."""

    host: HostView | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        self.host = context.host if isinstance(context, PluginContext) else None


def no_host(event: str) -> dict[str, Any]:
    """The ``UNAVAILABLE`` answer of an event that needs the host."""
    return error_reply(
        ErrorCode.UNAVAILABLE,
        f"{event} needs the host that runs the plugin (context.host of a PluginContext); "
        "run the plugin under ksi-host run, a Host or ksi_host.testing.PluginHarness, "
        "not on a bare PluginManager",
    )
