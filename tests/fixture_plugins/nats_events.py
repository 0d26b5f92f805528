"""Events the NATS bridge tests need: who answered, a slow event, and a bus listener.

``[nats_events] serve = true`` makes this host answer ``work:*`` and ``solo:*`` (the
others import them); every host records the ``feed`` events its bus sees, answers
each ``feed:ping`` by emitting ``feed:pong`` with the same ``correlation_id`` (the
guide's request/response over pub/sub), and lists what it saw on ``probe:seen``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ksi_host._dispatch import emit_chain
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata


class NatsEventsPlugin(BasePlugin):
    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(name="nats_events", version="1.0"),
            capabilities=PluginCapabilities(
                event_namespaces=["work", "solo"], commands=["probe:seen", "probe:emit"]
            ),
        )
        self.serve = False
        self.seen: list[dict[str, Any]] = []
        self.context: Any = None

    @hookimpl
    def ksi_plugin_context(self, context: Any) -> None:
        self.context = context
        self.serve = bool(context.get("config", {}).get("nats_events", {}).get("serve"))
        context.get("event_bus").subscribe(self._saw, "feed")

    async def _saw(self, event_name: str, data: dict[str, Any]) -> None:
        self.seen.append({"event": event_name, "data": data})
        if event_name == "feed:ping":
            reply = {"correlation_id": data.get("correlation_id"), "pid": os.getpid()}
            await self.context.emit("feed:pong", reply)

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name == "probe:seen":
            return {"seen": self.seen}
        if event_name == "probe:emit":
            return self._emit(data["event"], data.get("data", {}))
        if not self.serve:
            return None
        if event_name.endswith(":who"):
            return {
                "pid": os.getpid(),
                "n": data.get("n"),
                "via": context.get("nats"),
                "chain": list(emit_chain()),
            }
        if event_name.endswith(":sleep"):
            return self._sleep(float(data.get("seconds", 0.1)))
        return None

    async def _emit(self, event_name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"answer": await self.context.emit(event_name, data)}

    async def _sleep(self, seconds: float) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"slept": seconds, "pid": os.getpid()}


plugin = NatsEventsPlugin()
