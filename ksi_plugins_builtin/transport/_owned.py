"""A transport that owns a server: it stops the server at shutdown and reports its counters."""

from __future__ import annotations

from typing import Any, Protocol

from ksi_host import TransportPlugin, hookimpl

__all__ = ["ServerTransport"]


class Server(Protocol):
    """What every transport's server offers: the Unix socket's and the WebSocket's alike."""

    async def shutdown(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class ServerTransport(TransportPlugin):
    """``_server`` is set by the subclass's ``ksi_startup`` (typed there as its own server)."""

    _server: Server | None = None

    @hookimpl
    async def ksi_shutdown(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    @hookimpl
    def ksi_metrics_collected(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The server's counters, under the transport's name."""
        if self._server is not None:
            metrics[self.name] = self._server.stats()
        return metrics
