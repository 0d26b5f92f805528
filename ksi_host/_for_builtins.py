"""The one private module the built-in plugins may import: what only the host's own plugins need.

Every other built-in uses only ``ksi_host``'s public names, like any plugin. Three are
part of the host itself: the Unix socket and WebSocket transports are the daemon's own
doors (they need the claimed socket and the servers that read them), and the NATS bridge carries
events between hosts (it needs the host's dispatch and fallback, the wire format and
the emit chain); ``system:events`` reads the running host's plan with the event catalog
of ``ksi-host events``. Plugins outside ksi-host have no use for these, and nothing here is
promised to stay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksi_host._lazy_names import lazy_getattr
from ksi_host.context import PluginContext

if TYPE_CHECKING:
    from ksi_host._catalog import event_catalog
    from ksi_host._daemon import active_daemon
    from ksi_host._dispatch import continued_chain, emit_chain
    from ksi_host._lifecycle import Host
    from ksi_host._protocol import ProtocolFailure, encode_reply, parse_request
    from ksi_host._server import SocketServer
    from ksi_host._server_config import ServerConfig
    from ksi_host._websocket.config import WebSocketConfig, require_websockets, write_token
    from ksi_host._websocket.server import WebSocketServer

__all__ = [
    "Host",
    "ProtocolFailure",
    "ServerConfig",
    "SocketServer",
    "WebSocketConfig",
    "active_daemon",
    "continued_chain",
    "emit_chain",
    "encode_reply",
    "event_catalog",
    "host_of",
    "parse_request",
    "require_websockets",
    "websocket_server",
    "write_token",
]


_HOMES: Final = {
    "Host": "ksi_host._lifecycle",
    "ProtocolFailure": "ksi_host._protocol",
    "ServerConfig": "ksi_host._server_config",
    "SocketServer": "ksi_host._server",
    "WebSocketConfig": "ksi_host._websocket.config",
    "active_daemon": "ksi_host._daemon",
    "continued_chain": "ksi_host._dispatch",
    "emit_chain": "ksi_host._dispatch",
    "encode_reply": "ksi_host._protocol",
    "event_catalog": "ksi_host._catalog",
    "parse_request": "ksi_host._protocol",
    "require_websockets": "ksi_host._websocket.config",
    "write_token": "ksi_host._websocket.config",
}
"""Where each name lives, imported on first use (PEP 562): describing the built-ins for
``ksi-host plugins`` imports them, and must not pull in the daemon's whole machinery."""


__getattr__ = lazy_getattr(__name__, _HOMES)


def host_of(context: object) -> Host | None:
    """The host behind a plugin's context, which ``context.host`` hides from other plugins."""
    if not isinstance(context, PluginContext):
        return None
    from ksi_host._lifecycle import Host

    owner = context.host._owner
    return owner if isinstance(owner, Host) else None


def websocket_server() -> type[WebSocketServer]:
    """The WebSocket server class, imported only now: it needs the ``websocket`` extra."""
    from ksi_host._websocket.server import WebSocketServer

    return WebSocketServer
