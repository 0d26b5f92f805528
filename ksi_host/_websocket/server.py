"""The WebSocket server: each text message is one request, each reply one text message.

Requests are read, validated, dispatched and answered exactly as on the Unix socket
(:mod:`ksi_host._serving`), with the same limits (``[server]``): ``max_line_bytes``
per message, ``max_connections``, ``max_inflight`` per connection (past it the server
stops reading that connection), ``idle_timeout`` and ``drain_timeout``.

A TCP port is open to every local user and every web page, so the opening handshake
is refused (HTTP 401) without the token, presented as ``Authorization: Bearer
<token>``; a browser, which cannot set that header, sends ``{"token": "..."}`` as its
first message instead (it has an ``Origin``, and that origin must be in
``allowed_origins``, else HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import json
import logging
from collections.abc import Callable
from typing import Any, Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from ksi_host._protocol import parse_request
from ksi_host._server_config import ServerConfig
from ksi_host._serving import Dispatch, Requests, TransportStats, refusal, too_long
from ksi_host._websocket.config import WebSocketConfig, token_matches
from ksi_host.errors import WebSocketUnavailable
from ksi_host.replies import ErrorCode

__all__ = ["WebSocketServer"]

logger: Final = logging.getLogger("ksi_host.websocket")

_FIRST_MESSAGE_TIMEOUT: Final = 10.0
_NEEDS_FIRST_MESSAGE: Final = "ksi.first_message_auth"


class _Session:
    """One WebSocket connection's requests, at most ``max_inflight`` at once (:class:`Requests`).

    A reply is written at once; while the replies waiting for the client exceed the
    connection's write limit, no further message is read from it.
    """

    def __init__(self, server: WebSocketServer, connection: ServerConnection) -> None:
        self.connection = connection
        self.limits = server.limits
        self.stats = server.stats_
        self.requests = Requests(server.dispatch, self.stats, self._reply, self._settled)
        self.loop = asyncio.get_running_loop()
        self.last_activity = self.loop.time()
        self.idle_check: asyncio.TimerHandle | None = None
        self.closing: asyncio.Task[None] | None = None
        self.room: asyncio.Future[None] | None = None
        self.none_inflight: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Read messages until the client goes away, is closed as idle, or the daemon stops."""
        requests = self.requests
        self.idle_check = self.loop.call_later(self.limits.idle_timeout, self._check_idle)
        try:
            while True:
                try:
                    message = await self.connection.recv(decode=False)
                except ConnectionClosed:
                    return
                self.last_activity = self.loop.time()
                request = parse_request(message, unit="message")
                while requests.inflight >= self.limits.max_inflight and not requests.stopping:
                    self.room = self.loop.create_future()
                    await self.room
                requests.start(request)
                # Flow control, as send() has: wait while the client leaves replies unread.
                try:
                    await self.connection.drain()
                except OSError:  # lost while replies waited for it
                    return
        finally:
            self.idle_check.cancel()
            if self.closing is not None:
                await self.closing

    def _check_idle(self) -> None:
        """No request for ``idle_timeout`` and none in flight: say so, then close (1000).

        One timer per connection, as on the Unix socket, rather than a timeout (and
        the task ``wait_for`` makes) around every read.
        """
        timeout = self.limits.idle_timeout
        remaining = self.last_activity + timeout - self.loop.time()
        if remaining > 0 or self.requests.inflight:
            delay = remaining if remaining > 0 else timeout
            self.idle_check = self.loop.call_later(delay, self._check_idle)
            return
        self._reply(
            refusal(
                self.stats,
                ErrorCode.IDLE_TIMEOUT,
                f"no request for {timeout:g}s; the connection is closed. "
                "Reconnect when you have one",
            )
        )
        self.closing = self.loop.create_task(
            self.connection.close(CloseCode.NORMAL_CLOSURE, "IDLE_TIMEOUT")
        )

    def _reply(self, line: bytes) -> None:
        """Send one reply as a text message, without its NDJSON newline; dropped once closing."""
        connection = self.connection
        if connection.protocol.state is State.OPEN:
            connection.protocol.send_text(line[:-1])
            connection.send_data()

    def _settled(self) -> None:
        self.last_activity = self.loop.time()
        if self.room is not None and not self.room.done():
            self.room.set_result(None)
        waiter = self.none_inflight
        if waiter is not None and not self.requests.inflight and not waiter.done():
            waiter.set_result(None)

    async def drained(self) -> None:
        """Refuse new requests; return once none is in flight."""
        self.requests.stop()
        self._settled()  # a reader waiting for room answers SHUTTING_DOWN from now on
        if self.requests.inflight:
            self.none_inflight = self.loop.create_future()
            await self.none_inflight


class _TooLongAnswered(ServerProtocol):
    """A message over ``max_line_bytes`` is answered with ``LINE_TOO_LONG``, then closed (1009).

    The library refuses such a frame from its header, before reading it, and closes
    the connection with 1009; this sends the reply the Unix socket sends for a line
    too long first, so a client learns why in the protocol's own words.
    """

    def __init__(self, too_long: Callable[[], bytes], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._too_long = too_long

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if code == CloseCode.MESSAGE_TOO_BIG and self.state is State.OPEN:
            self.send_text(self._too_long()[:-1])
        super().fail(code, reason)


def _answering_too_long(too_long: Callable[[], bytes]) -> type[ServerConnection]:
    """The connection class ``serve`` builds: its protocol is a :class:`_TooLongAnswered`."""

    class Connection(ServerConnection):
        def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
            answering = _TooLongAnswered(
                too_long, max_size=protocol.max_message_size, logger=protocol.logger
            )
            super().__init__(answering, *args, **kwargs)

    return Connection


class WebSocketServer:
    """Serve ``dispatch`` over WebSocket until :meth:`shutdown`; bound by :meth:`bind`."""

    def __init__(
        self, dispatch: Dispatch, config: WebSocketConfig, limits: ServerConfig, token: str
    ) -> None:
        self.dispatch: Final = dispatch
        self.config: Final = config
        self.limits: Final = limits
        self.stats_: Final = TransportStats()
        self._token = token
        self._server: Server | None = None
        self._sessions: set[_Session] = set()
        self._stopping = False
        self._port = config.port

    @property
    def url(self) -> str:
        """``ws://host:port`` with the port actually bound (``port = 0`` picks a free one)."""
        host = self.config.host
        return f"ws://{f'[{host}]' if ':' in host else host}:{self._port}"

    def stats(self) -> dict[str, Any]:
        """Counters for ``ksi_metrics_collected``."""
        return {"url": self.url, **self.stats_.as_dict(len(self._sessions))}

    async def bind(self) -> None:
        """Listen on the port without accepting yet (see :meth:`start`)."""
        try:
            self._server = await serve(
                self._handle,
                self.config.host,
                self.config.port,
                process_request=self._check_handshake,
                max_size=self.limits.max_line_bytes,
                create_connection=_answering_too_long(
                    functools.partial(too_long, self.stats_, self.limits.max_line_bytes, "message")
                ),
                write_limit=self.limits.max_reply_buffer_bytes,
                compression=None,
                start_serving=False,
                backlog=128,
                logger=logger,
            )
        except OSError as exc:
            raise WebSocketUnavailable(
                host=self.config.host, port=self.config.port, detail=exc.strerror or str(exc)
            ) from None
        self._port = next(iter(self._server.sockets)).getsockname()[1]

    async def start(self) -> None:
        """Accept connections; binds first if :meth:`bind` was not called."""
        if self._server is None:
            await self.bind()
        assert self._server is not None
        await self._server.server.start_serving()
        logger.info("listening on %s", self.url)

    def _check_handshake(
        self, connection: ServerConnection, request: HttpRequest
    ) -> Response | None:
        """Refuse a page whose origin is not allowed (403) and a client without the token (401)."""
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.config.allowed_origins:
            logger.warning("refused a WebSocket handshake from origin %s", origin)
            return _reject(
                connection,
                http.HTTPStatus.FORBIDDEN,
                f"origin {origin} is not allowed; add it to allowed_origins in the daemon's "
                "[websocket] config to let this page talk to the daemon",
            )
        authorization = request.headers.get("Authorization")
        if authorization is None and origin is not None:
            setattr(connection, _NEEDS_FIRST_MESSAGE, True)  # a browser: it cannot set headers
            return None
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(presented.strip(), self._token):
            return None
        logger.warning("refused a WebSocket handshake without the right token")
        what = "a wrong token" if authorization else "no token"
        return _reject(
            connection,
            http.HTTPStatus.UNAUTHORIZED,
            f"{what}: send 'Authorization: Bearer <token>' with the token the daemon wrote to "
            f"{self.config.token_file()} (or [websocket] token in its config)",
            {"WWW-Authenticate": 'Bearer realm="ksi-host"'},
        )

    async def _handle(self, connection: ServerConnection) -> None:
        if len(self._sessions) >= self.limits.max_connections or self._stopping:
            code, message = (
                (ErrorCode.SHUTTING_DOWN, "the daemon is stopping; retry later")
                if self._stopping
                else (
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    f"the daemon already has {self.limits.max_connections} WebSocket "
                    "connections; close one, retry later, or raise max_connections in the "
                    "daemon's config",
                )
            )
            with contextlib.suppress(ConnectionClosed):
                await connection.send(refusal(self.stats_, code, message)[:-1], text=True)
                await connection.close(CloseCode.TRY_AGAIN_LATER, code.value)
            return
        if getattr(connection, _NEEDS_FIRST_MESSAGE, False) and not await self._first_message(
            connection
        ):
            return
        session = _Session(self, connection)
        self._sessions.add(session)
        self.stats_.connections_total += 1
        try:
            await session.run()
        finally:
            if session.requests.tasks:
                await asyncio.wait(set(session.requests.tasks))
            self._sessions.discard(session)

    async def _first_message(self, connection: ServerConnection) -> bool:
        """A browser's first message must be ``{"token": "..."}``; close 1008 otherwise."""
        try:
            message = await asyncio.wait_for(connection.recv(), _FIRST_MESSAGE_TIMEOUT)
            presented = json.loads(message).get("token")
        except (ConnectionClosed, asyncio.TimeoutError, ValueError, AttributeError):
            presented = None
        if isinstance(presented, str) and token_matches(presented, self._token):
            with contextlib.suppress(ConnectionClosed):
                await connection.send(
                    json.dumps(
                        {"event": None, "correlation_id": None, "data": {"status": "authenticated"}}
                    )
                )
            return True
        logger.warning("closed a WebSocket connection whose first message had no valid token")
        with contextlib.suppress(ConnectionClosed):
            await connection.close(
                CloseCode.POLICY_VIOLATION,
                'send {"token": "<token>"} as the first message, with the daemon\'s token',
            )
        return False

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests up to the deadline, close with 1001."""
        if self._server is None or self._stopping:
            return
        self._stopping = True
        self._server.close(close_connections=False)
        sessions = list(self._sessions)
        for session in sessions:
            session.requests.stop()
        if sessions:
            drains = [asyncio.ensure_future(s.drained()) for s in sessions]
            _done, late = await asyncio.wait(drains, timeout=self.limits.drain_timeout)
            if late:
                logger.warning("cancelled WebSocket requests at the drain deadline")
                for session in sessions:
                    session.requests.cancel()
                await asyncio.wait(late)
        closing = [
            asyncio.ensure_future(c.close(CloseCode.GOING_AWAY, "the daemon is stopping"))
            for c in self._server.connections
        ]
        if closing:
            await asyncio.wait(closing)
        await self._server.wait_closed()
        logger.info("stopped listening on %s", self.url)


def _reject(
    connection: ServerConnection,
    status: http.HTTPStatus,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    response = connection.respond(status, message + "\n")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
