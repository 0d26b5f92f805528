"""The WebSocket transport: the guide's ``transport/websocket`` example, as a built-in.

Off unless ``[websocket] enabled = true``; it then needs ``pip install
"ksi-host[websocket]"``, and without it this plugin fails with that command as its
reason while the Unix socket keeps serving. It shares the Unix socket's protocol
and limits (``[server]``); see ``docs/PROTOCOL.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from ksi_host import PluginContext, hookimpl
from ksi_host._for_builtins import (
    ServerConfig,
    WebSocketConfig,
    require_websockets,
    websocket_server,
    write_token,
)
from ksi_plugins_builtin._metadata import builtin_metadata
from ksi_plugins_builtin.transport._owned import ServerTransport

if TYPE_CHECKING:
    from ksi_host._websocket.server import WebSocketServer

__all__ = ["CONFIG_SECTION", "WebSocketTransport", "plugin"]

CONFIG_SECTION = "websocket"


class WebSocketTransport(ServerTransport):
    """Turns each WebSocket text message into ``emit_event(event, data)``; replies in kind."""

    config_model: ClassVar[type[BaseModel] | None] = WebSocketConfig

    def __init__(self) -> None:
        super().__init__(
            name="websocket",
            transport_type="websocket",
            metadata=builtin_metadata(
                "websocket",
                "WebSocket transport: one JSON request per text message "
                '(opt-in: [websocket] enabled = true, pip install "ksi-host[websocket]")',
            ),
        )
        self._config = WebSocketConfig()
        self._limits = ServerConfig()
        self._server: WebSocketServer | None = None
        self._token_written = False

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        config = context.get("config")
        config = config if isinstance(config, Mapping) else {}
        self._config = WebSocketConfig.model_validate(config.get(CONFIG_SECTION, {}))
        self._limits = ServerConfig.from_section(
            config.get("server", {}), where="[server] section of the config"
        )

    @hookimpl
    async def ksi_startup(self) -> dict[str, str]:
        if not self._config.enabled:
            return {"status": "disabled", "enable": f"[{CONFIG_SECTION}] enabled = true"}
        require_websockets("[websocket] enabled = true", where=f"[{CONFIG_SECTION}] section")
        token = write_token(self._config.token_file(), self._config.token)
        self._token_written = True
        self._server = websocket_server()(self.emit_event, self._config, self._limits, token)
        from ksi_host._for_builtins import active_daemon  # the daemon comes with asyncio

        daemon = active_daemon()
        if daemon is not None:
            await self._server.bind()
            daemon.listen(
                self._server,
                transport=self.name,
                max_connections=self._limits.max_connections,
            )
        else:
            await self._server.start()
        return {"status": "plugin_started", "url": self._server.url}

    @hookimpl
    async def ksi_shutdown(self) -> None:
        """Stop the server, then remove the token file this plugin wrote."""
        await super().ksi_shutdown()
        if self._token_written:
            with contextlib.suppress(FileNotFoundError):
                self._config.token_file().unlink()
            self._token_written = False


plugin = WebSocketTransport()
