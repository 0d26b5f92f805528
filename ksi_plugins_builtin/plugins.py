"""``plugin:list`` and ``system:events``: what the running host loaded and what it answers."""

from __future__ import annotations

from typing import Any

from ksi_host import PluginCapabilities, PluginMetadata, __version__, hookimpl
from ksi_host._catalog import event_catalog
from ksi_plugins_builtin._host import HostReporter, no_host

__all__ = ["PluginsPlugin", "plugin"]


class PluginsPlugin(HostReporter):
    """Lets a client see what the host loaded, and why anything is not running."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(
                name="plugins",
                version=__version__,
                description="plugin:list: the running plan and each plugin's status; "
                "system:events: the events the running plugins declare",
            ),
            capabilities=PluginCapabilities(commands=["plugin:list", "system:events"]),
        )

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name not in ("plugin:list", "system:events"):
            return None
        if self.host is None:
            return no_host(event_name)
        if event_name == "system:events":
            plan = getattr(getattr(self.host, "_owner", None), "plan", None)
            if plan is None:
                return no_host(event_name)
            running = {s.key for s in self.host.status() if s.status == "running"}
            return event_catalog(plan, only=running).model_dump()
        return {"plugins": [status.as_dict() for status in self.host.status()]}


plugin = PluginsPlugin()
