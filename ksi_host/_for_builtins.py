"""The one private module the built-in plugins may import: what only the host's own plugins need.

Every other built-in uses only ``ksi_host``'s public names, like any plugin. Two are
part of the host itself: the Unix socket transport is the daemon's own door (it
needs the claimed socket and the server that reads it), and the NATS bridge carries
events between hosts (it needs the host's dispatch and fallback, the wire format and
the emit chain). Plugins outside ksi-host have no use for these, and nothing here is
promised to stay.
"""

from __future__ import annotations

from ksi_host._daemon import active_daemon
from ksi_host._dispatch import continued_chain, emit_chain
from ksi_host._lifecycle import Host
from ksi_host._protocol import ProtocolFailure, encode_reply, parse_request
from ksi_host._server import ServerConfig, SocketServer
from ksi_host.context import PluginContext

__all__ = [
    "Host",
    "ProtocolFailure",
    "ServerConfig",
    "SocketServer",
    "active_daemon",
    "continued_chain",
    "emit_chain",
    "encode_reply",
    "host_of",
    "parse_request",
]


def host_of(context: object) -> Host | None:
    """The host behind a plugin's context, which ``context.host`` hides from other plugins."""
    if not isinstance(context, PluginContext):
        return None
    owner = context.host._owner
    return owner if isinstance(owner, Host) else None
