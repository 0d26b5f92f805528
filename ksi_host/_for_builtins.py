"""The one private module the built-in plugins may import: what the socket transport needs.

Every other built-in uses only ``ksi_host``'s public names, like any plugin. The
Unix socket transport is the daemon's own door, so it needs the daemon's claimed
socket and the server that reads it; plugins outside ksi-host have no use for
these, and nothing here is promised to stay.
"""

from ksi_host._daemon import active_daemon
from ksi_host._server import ServerConfig, SocketServer

__all__ = ["ServerConfig", "SocketServer", "active_daemon"]
