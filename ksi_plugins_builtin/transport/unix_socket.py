"""The Unix socket transport: the guide's ``transport/unix_socket.py``, serving NDJSON.

Under ``ksi-host run`` the daemon has already claimed the socket (lock + bind) and
this plugin serves it; embedded in another host, the plugin serves the socket
itself, from the same ``[server]`` config section (``socket_path``, limits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksi_host import PluginContext, hookimpl
from ksi_host._for_builtins import ServerConfig
from ksi_plugins_builtin._metadata import builtin_metadata
from ksi_plugins_builtin.transport._owned import ServerTransport

if TYPE_CHECKING:
    from ksi_host._for_builtins import SocketServer

__all__ = ["CONFIG_SECTION", "UnixSocketTransport", "plugin"]

CONFIG_SECTION = "server"


class UnixSocketTransport(ServerTransport):
    """Turns each request line into ``emit_event(event, data)`` and writes back the answer."""

    def __init__(self) -> None:
        super().__init__(
            name="unix_socket",
            transport_type="unix",
            metadata=builtin_metadata(
                "unix_socket", "Unix socket transport: newline-delimited JSON requests and replies"
            ),
        )
        self._config: ServerConfig | None = None
        self._server: SocketServer | None = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        section = context.get("config", {}).get(CONFIG_SECTION, {})
        self._config = ServerConfig.from_section(
            section, where=f"[{CONFIG_SECTION}] section of the config"
        )

    @hookimpl
    async def ksi_startup(self) -> dict[str, str]:
        # The daemon and the server come with asyncio: imported when serving, not to describe.
        from ksi_host._for_builtins import SocketServer, active_daemon

        daemon = active_daemon()
        if daemon is not None:
            self._server = daemon.serve(self.emit_event)
        else:
            self._server = SocketServer(self.emit_event, self._config or ServerConfig())
            await self._server.start()
        return {"status": "plugin_started", "socket": str(self._server.socket_path)}


plugin = UnixSocketTransport()
