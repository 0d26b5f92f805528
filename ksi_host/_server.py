"""The asyncio Unix socket server: NDJSON in, replies matched by id.

Each connection is an ``asyncio.Protocol``: lines of at most ``max_line_bytes`` are cut
from what arrives and started at once; a longer line gets a ``LINE_TOO_LONG`` reply
and the connection is closed, so no fragment of it is ever parsed. At most
``max_inflight`` requests of one connection run at once, and at most
``max_reply_buffer_bytes`` of replies wait for a client to read them: past either
the server stops reading that connection, and the client's writes block
(backpressure). Shutdown stops accepting, lets in-flight requests finish until
``drain_timeout``, answers the rest with ``SHUTTING_DOWN`` and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

from ksi_host._instance import LISTEN_BACKLOG, Instance, peer_uid
from ksi_host._protocol import parse_request
from ksi_host._server_config import ServerConfig
from ksi_host._serving import Dispatch, Requests, TransportStats, refusal, too_long
from ksi_host.replies import ErrorCode

__all__ = ["Dispatch", "SocketServer"]

logger: Final = logging.getLogger("ksi_host.server")
_FLUSH_GRACE: Final = 1.0


class _Connection(asyncio.Protocol):
    """One client, driven by the loop's callbacks: no task per connection or per line.

    Lines are cut from a buffer as they arrive and started at once (see
    :meth:`Requests.start`); a reply is written straight to the transport. Reading
    pauses while ``max_inflight`` requests run, and while the replies waiting for the
    client exceed ``max_reply_buffer_bytes`` (the transport's high-water mark): a
    client that does not read holds back only itself, and the daemon's memory for it
    stays bounded by that budget.
    """

    def __init__(self, server: SocketServer) -> None:
        self.server = server
        self.stats = server.stats_
        self.config = server.config
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.requests = Requests(server.dispatch, self.stats, self._write, self._settled)
        self.held = False  # stopped cutting lines: max_inflight, or the reply budget is spent
        self.reading_paused = False
        self.writing_paused = False
        self.eof = False
        self.overlong = False
        self.lingering = False
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.last_activity = self.loop.time()
        self.idle_handle: asyncio.TimerHandle | None = None
        self.linger_handle: asyncio.TimerHandle | None = None
        self.lost = False

    # --- the transport's callbacks ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        refused = self.server.refusal(transport)
        self.server.track(self, admitted=refused is None)
        if refused is not None:
            transport.write(refused)
            self._linger()
            return
        transport.set_write_buffer_limits(high=self.config.max_reply_buffer_bytes)
        self.idle_handle = self.loop.call_later(self.config.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.lingering or self.overlong:
            return
        if (
            not self.buffer
            and self.requests.inflight < self.config.max_inflight
            and not self.writing_paused
            and data.find(b"\n") == len(data) - 1
            and len(data) <= self.config.max_line_bytes
            and not data.isspace()
        ):
            # One whole request line, the common case: parsed as it came (JSON allows the
            # trailing newline), without passing through the buffer or _admit.
            self.last_activity = self.loop.time()
            self.requests.start(parse_request(data))
            if self.requests.stopping:
                self._close_when_done()  # refused with SHUTTING_DOWN: nothing settles
            return
        self.buffer += data
        self._process()

    def eof_received(self) -> bool:
        self.eof = True
        if self.lingering:
            return False
        self._process()
        return True  # keep the write side open for the replies still owed

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.last_activity = self.loop.time()
        self._process()  # reading may have paused in a task's write, outside _process

    def connection_lost(self, exc: Exception | None) -> None:
        """Requests still running finish (a ``state:set`` is not cut short); then it is closed."""
        self.lost = True
        for handle in (self.idle_handle, self.linger_handle):
            if handle is not None:
                handle.cancel()
        self._close_when_done()

    # --- reading: cut lines, start requests ---

    def _process(self) -> None:
        """Start every complete line the limits allow; close once nothing more is owed."""
        self.held = False
        requests = self.requests
        buffer, limit, start = self.buffer, self.config.max_line_bytes, 0
        while not self.overlong:
            if not requests.stopping and (
                requests.inflight >= self.config.max_inflight or self.writing_paused
            ):
                self.held = True
                break
            end = buffer.find(b"\n", start)
            if end == -1:
                if len(buffer) - start > limit:
                    self._line_too_long()
                elif self.eof:
                    rest = buffer[start:]
                    start = len(buffer)
                    if rest and not rest.isspace():
                        self._admit(rest)
                break
            if end - start > limit:
                self._line_too_long()
                break
            line = buffer[start:end]
            start = end + 1
            if line and not line.isspace():
                self._admit(line)
        del buffer[:start]
        if self.held:
            self._pause_reading()
        elif self.reading_paused and not self.overlong:
            self.reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        self._close_when_done()

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def _admit(self, line: bytes | bytearray) -> None:
        """Parse and start one request; its ``\\r\\n`` or ``\\n`` is JSON whitespace."""
        self.last_activity = self.loop.time()
        self.requests.start(parse_request(line))

    def _settled(self) -> None:
        """A request finished: read on if it held reading back, else close if nothing is owed."""
        self.last_activity = self.loop.time()
        if self.held:
            self._process()
        else:
            self._close_when_done()

    def _line_too_long(self) -> None:
        """Answer, stop parsing for good, and close once the replies still owed are written."""
        self.overlong = True
        self.buffer.clear()
        self._write(too_long(self.stats, self.config.max_line_bytes, "line"))

    # --- writing and closing ---

    def _write(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)

    def _close_when_done(self) -> None:
        if self.requests.inflight or self.transport is None:
            return
        if self.lost:
            if not self.closed.done():
                self.closed.set_result(None)
            return
        if self.lingering:
            return
        if self.overlong:
            self._linger()
        elif self.requests.stopping or (self.eof and not self.buffer):
            self.transport.close()

    def _linger(self) -> None:
        """Half-close, then drop what the client still sends, for at most ``_FLUSH_GRACE``.

        Closing a socket with unread input resets the connection, and a client reading
        its replies then gets the reset instead of them; the rest of an over-long line is
        usually still on its way. A lingering connection no longer counts against
        ``max_connections``: the client has its EOF and may connect again at once.
        """
        transport = self.transport
        assert transport is not None
        self.lingering = True
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        if self.eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.linger_handle = self.loop.call_later(_FLUSH_GRACE, transport.close)

    def stop_reading(self) -> None:
        """Refuse new requests from now on; close once nothing is in flight.

        Reading goes on, so a request sent while draining gets ``SHUTTING_DOWN``.
        """
        self.requests.stop()
        if self.held:
            self._process()
        else:
            self._close_when_done()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _check_idle(self) -> None:
        transport = self.transport
        assert transport is not None
        remaining = self.last_activity + self.config.idle_timeout - self.loop.time()
        stalled = transport.get_write_buffer_size() > 0
        if remaining > 0 or (self.requests.inflight and not stalled):
            delay = remaining if remaining > 0 else self.config.idle_timeout
            self.idle_handle = self.loop.call_later(delay, self._check_idle)
            return
        if stalled:
            # Replies are waiting to be read and none was for idle_timeout: a client that
            # never reads would hold its connection (and a max_connections slot) forever.
            logger.warning(
                "closed a connection that read no reply for %gs", self.config.idle_timeout
            )
            self.stats.count(ErrorCode.IDLE_TIMEOUT)
            transport.abort()
            return
        self._write(
            refusal(
                self.stats,
                ErrorCode.IDLE_TIMEOUT,
                f"no request for {self.config.idle_timeout:g}s; the connection is closed. "
                "Reconnect when you have one",
            )
        )
        transport.close()


class SocketServer:
    """Serve ``dispatch`` on a Unix socket until :meth:`shutdown`.

    Pass ``sock`` (bound and listening, e.g. ``Instance.sock``) to serve a socket the
    caller claimed; without it the server claims ``config.socket_path`` itself and
    releases it on shutdown.
    """

    def __init__(
        self, dispatch: Dispatch, config: ServerConfig, *, sock: socket.socket | None = None
    ) -> None:
        self.dispatch: Final = dispatch
        self.config: Final = config
        self.stats_: Final = TransportStats()
        self._sock = sock
        self._instance: Instance | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._closed: asyncio.Event | None = None

    @property
    def socket_path(self) -> Path:
        return self.config.socket_path

    @property
    def serving(self) -> bool:
        return self._server is not None and self._closed is None

    def stats(self) -> dict[str, Any]:
        """Counters for ``ksi_metrics_collected``."""
        open_ = sum(not c.lingering for c in self._connections)
        return {"socket": str(self.socket_path), **self.stats_.as_dict(open_)}

    async def start(self) -> None:
        if self._sock is None:
            self._instance = Instance.claim(self.config.socket_path)
            self._sock = self._instance.sock
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: _Connection(self), sock=self._sock, backlog=LISTEN_BACKLOG
        )
        logger.info("listening on %s", self.socket_path)

    def refusal(self, transport: asyncio.BaseTransport) -> bytes | None:
        """The reply that turns a new connection away, or None to serve it."""
        if self._closed is not None:
            logger.info("refused a connection: the daemon is stopping")
            return refusal(
                self.stats_, ErrorCode.SHUTTING_DOWN, "the daemon is stopping; retry later"
            )
        sock = transport.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            logger.warning("refused a connection from uid %d", uid)
            return refusal(
                self.stats_,
                ErrorCode.PEER_REFUSED,
                f"this daemon serves uid {os.getuid()} only, not uid {uid}; "
                "run your own with ksi-host run",
            )
        if sum(not c.lingering for c in self._connections) >= self.config.max_connections:
            logger.info(
                "refused a connection: %d connections are open (max_connections)",
                self.config.max_connections,
            )
            return refusal(
                self.stats_,
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"the daemon already has {self.config.max_connections} connections; close "
                "one, retry later, or raise max_connections in the daemon's config",
            )
        return None

    def track(self, connection: _Connection, *, admitted: bool) -> None:
        """Hold ``connection`` until it is closed, so shutdown waits for it."""
        self._connections.add(connection)
        connection.closed.add_done_callback(lambda _: self._connections.discard(connection))
        if admitted:
            self.stats_.connections_total += 1

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests up to the deadline, close; idempotent."""
        if self._closed is not None:
            await self._closed.wait()
            return
        self._closed = asyncio.Event()
        try:
            if self._server is not None:
                self._server.close()
            for connection in list(self._connections):
                connection.stop_reading()
            if self._connections:
                _done, late = await asyncio.wait(
                    {c.closed for c in self._connections}, timeout=self.config.drain_timeout
                )
                if late:
                    logger.warning("cancelled %d connection(s) at the drain deadline", len(late))
                    await self._cancel()
            if self._server is not None:
                await self._server.wait_closed()
        finally:
            if self._instance is not None:
                self._instance.release()
            self._closed.set()
            logger.info("stopped listening on %s", self.socket_path)

    async def _cancel(self) -> None:
        """Answer what still runs with ``SHUTTING_DOWN``; abort a client that will not read it.

        A connection whose client does not read its ``SHUTTING_DOWN`` replies within
        ``_FLUSH_GRACE`` seconds is aborted.
        """
        late = [c for c in self._connections if not c.closed.done()]
        for connection in late:
            connection.requests.cancel()
        _done, stuck = await asyncio.wait({c.closed for c in late}, timeout=_FLUSH_GRACE)
        for connection in late:
            if connection.closed in stuck:
                connection.abort()
        if stuck:
            await asyncio.wait(stuck)

    async def __aenter__(self) -> SocketServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()
