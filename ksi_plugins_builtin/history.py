"""``system:history``: the event bus's recent events, filtered by namespace, bounded."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksi_host import (
    BasePlugin,
    ErrorCode,
    EventBus,
    InvalidEventName,
    PluginCapabilities,
    PluginContext,
    error_reply,
    hookimpl,
)
from ksi_host.events import normalise_namespace
from ksi_host.replies import jsonable
from ksi_plugins_builtin._metadata import builtin_metadata

__all__ = ["MAX_LIMIT", "HistoryPlugin", "plugin"]

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100


class _Query(BaseModel):
    # Built on the first request (defer_build): the daemon's start does not wait for it.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    namespace: str | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, strict=True)


class HistoryPlugin(BasePlugin):
    """The guide's "use event history", reachable from a client."""

    def __init__(self) -> None:
        super().__init__(
            metadata=builtin_metadata("history", "system:history: recent events by namespace"),
            capabilities=PluginCapabilities(commands=["system:history"]),
        )
        self._bus: EventBus | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        bus = context.get("event_bus")
        self._bus = bus if isinstance(bus, EventBus) else None

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name != "system:history":
            return None
        try:
            query = _Query.model_validate(data)
            namespace = None if query.namespace is None else normalise_namespace(query.namespace)
        except ValidationError as exc:
            return error_reply(
                ErrorCode.INVALID_INPUT,
                f"system:history takes 'namespace' (e.g. \"system\") and 'limit' "
                f"(an integer 1..{MAX_LIMIT}): {exc.errors()[0]['msg']}",
            )
        except InvalidEventName as exc:
            return error_reply(ErrorCode.INVALID_INPUT, f"{exc.what}; {exc.hint}")
        if self._bus is None:
            return error_reply(
                ErrorCode.UNAVAILABLE,
                "system:history needs the host's event bus in the plugin context "
                "(context['event_bus']); run the plugin under ksi-host run or a Host",
            )
        events = jsonable(self._bus.get_event_history(namespace=namespace, limit=query.limit))
        return {"namespace": namespace, "limit": query.limit, "events": events}


plugin = HistoryPlugin()
