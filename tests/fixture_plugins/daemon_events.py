"""Events the daemon tests need and no built-in has: echo, slow, raising, endless emit loop.

Loaded like any user plugin: ``ksi-host run --plugin-path`` this file, or in a plan.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata


class DaemonEventsPlugin(BasePlugin):
    """``test:echo`` answers its data, ``test:sleep`` waits ``seconds``, ``test:raise`` raises.

    ``test:loop`` emits itself until the host's ``max_emit_depth`` cuts it off.
    """

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(name="daemon_events", version="1.0"),
            capabilities=PluginCapabilities(
                commands=["test:echo", "test:sleep", "test:raise", "test:loop"]
            ),
        )

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name == "test:echo":
            return {"echo": data}
        if event_name == "test:sleep":
            return self._sleep(float(data.get("seconds", 0.1)), data)
        if event_name == "test:raise":
            raise RuntimeError("boom")
        if event_name == "test:loop":
            return context.emit("test:loop", data)
        return None

    async def _sleep(self, seconds: float, data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"slept": seconds, "echo": data}


plugin = DaemonEventsPlugin()
