"""A plugin with a filter, a validator and an emitting handler, run by the harness and a daemon.

``checked:add`` needs an integer ``by`` (the validator says so), ``checked:secret`` is
blocked by the filter, every ``checked:*`` event is stamped by the filter, and
``checked:add`` emits ``checked:added`` with the new total.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ksi_host import (
    BasePlugin,
    ErrorCode,
    PluginCapabilities,
    PluginContext,
    PluginMetadata,
    error_reply,
    hookimpl,
)


class CheckedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = 0


class CheckedEventsPlugin(BasePlugin):
    config_model = CheckedSettings

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(name="checked_events", version="1.0"),
            capabilities=PluginCapabilities(event_namespaces=["checked"]),
        )
        self.total = 0
        self.context: PluginContext[CheckedSettings] | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext[CheckedSettings]) -> None:
        self.context = context
        self.total = context.settings.start

    @hookimpl
    def ksi_filter_event(self, event_name: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if event_name == "checked:secret":
            return None
        return {**data, "stamped": True}

    @hookimpl
    def ksi_validate_event(self, event_name: str, data: dict[str, Any]) -> None:
        if event_name == "checked:add" and not isinstance(data.get("by"), int):
            raise ValueError("checked:add needs an integer 'by', e.g. {\"by\": 2}")

    @hookimpl
    async def ksi_handle_event(
        self, event_name: str, data: dict[str, Any], context: PluginContext[CheckedSettings]
    ) -> dict[str, Any] | None:
        if event_name == "checked:add":
            self.total += data["by"]
            await context.emit("checked:added", {"total": self.total})
            return {"total": self.total, "stamped": data["stamped"]}
        if event_name == "checked:echo":
            return {"data": data, "pair": (1, 2)}
        if event_name == "checked:refuse":
            return error_reply(ErrorCode.UNAVAILABLE, "not today", plugin=self.name)
        return None


plugin = CheckedEventsPlugin()
