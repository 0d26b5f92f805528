"""``plugin:list``, ``system:events``, ``plugin:reload`` and ``plugin:load``: the running plan.

``plugin:list`` and ``system:events`` render the shape every view shares: ``plugin:list``
the one ``ksi-host plugins --json`` prints, ``system:events`` the one ``ksi-host events
--json`` prints. ``plugin:reload`` re-plans with the daemon's config and paths and
applies the difference (see :mod:`ksi_host._reload`); ``plugin:load`` with ``{"path":
ABSOLUTE}`` adds a plugin file or folder through the whole lifecycle, as the guide's
Dynamic Plugin Loading does by hand. Connected clients stay connected through both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksi_host import (
    ErrorCode,
    KsiError,
    PluginCapabilities,
    PluginContext,
    error_reply,
    hookimpl,
)
from ksi_host._for_builtins import host_of
from ksi_plugins_builtin._host import HostReporter, no_host
from ksi_plugins_builtin._metadata import builtin_metadata

if TYPE_CHECKING:
    from ksi_host._for_builtins import Host

__all__ = ["PluginsPlugin", "plugin"]

_COMMANDS = ("plugin:list", "system:events", "plugin:reload", "plugin:load")


class PluginsPlugin(HostReporter):
    """Lets a client see what the host loaded, why anything is not running, and change it."""

    def __init__(self) -> None:
        super().__init__(
            metadata=builtin_metadata(
                "plugins",
                "plugin:list and system:events: the running plan and its events; "
                "plugin:reload and plugin:load: change it live",
            ),
            capabilities=PluginCapabilities(commands=list(_COMMANDS)),
        )

    _host: Host | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        HostReporter.ksi_plugin_context(self, context)
        self._host = host_of(context)  # plan, warnings, reload: not on HostView

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        """List and events answer at once; reload and load answer with a coroutine to await."""
        if event_name not in _COMMANDS:
            return None
        if self.host is None:
            return no_host(event_name)
        if event_name == "plugin:list":
            return self.host.plugin_list()
        host = self._host
        if host is None:
            return no_host(event_name)
        if event_name == "system:events":
            from ksi_host._for_builtins import event_catalog

            return event_catalog(host.plan, host.entries()).model_dump(mode="json")
        return self._change(host, event_name, data)

    async def _change(self, host: Host, event_name: str, data: dict[str, Any]) -> dict[str, Any]:
        try:
            if event_name == "plugin:reload":
                return (await host.reload()).as_dict()
            return await self._load(host, data.get("path"))
        except KsiError as exc:
            return error_reply(ErrorCode.UNAVAILABLE, exc.render())

    async def _load(self, host: Host, path: object) -> dict[str, Any]:
        if not isinstance(path, str) or not Path(path).is_absolute():
            return error_reply(
                ErrorCode.INVALID_INPUT,
                f"plugin:load needs data.path, an absolute path to a plugin file or folder "
                f"(got {path!r}); `ksi-host load PATH` makes a relative PATH absolute",
            )
        if not Path(path).exists():
            return error_reply(ErrorCode.INVALID_INPUT, f"plugin:load: nothing at {path}")
        change, found = await host.load(path)
        if not found:
            return error_reply(
                ErrorCode.INVALID_INPUT,
                f"plugin:load: {path} offers no plugin (a .py file or a package folder that "
                "binds `plugin`, or a folder of them)",
            )
        broken = [status for status in found if status.status != "running"]
        if broken:
            return error_reply(
                ErrorCode.INVALID_INPUT,
                "plugin:load: "
                + "; ".join(
                    f"{s.name} from {s.origin.location} is {s.status}: "
                    + (f"{s.reason.message} ({s.reason.hint})" if s.reason else s.status)
                    for s in broken
                ),
            )
        return {
            **change.as_dict(),
            "status": "loaded",
            "plugins": [
                entry.model_dump(mode="json")
                for entry in host.entries()
                if entry.name in {status.name for status in found}
            ],
        }


plugin = PluginsPlugin()
