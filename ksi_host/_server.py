"""The asyncio Unix socket server: NDJSON in, one task per request, replies matched by id.

Each connection reads lines of at most ``max_line_bytes``; a longer line gets a
``LINE_TOO_LONG`` reply and the connection is closed, so no fragment of it is ever
parsed. At most ``max_inflight`` requests of one connection run at once: past that
the server stops reading, and the client's writes block (backpressure). Every write
is followed by ``drain()``. Shutdown stops accepting, lets in-flight requests finish
until ``drain_timeout``, answers the rest with ``SHUTTING_DOWN`` and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ksi_host._config import env_variable
from ksi_host._instance import MAX_SOCKET_PATH, Instance, default_socket_path, peer_uid
from ksi_host._protocol import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_LINE_BYTES,
    ErrorCode,
    ProtocolFailure,
    encode_reply,
    error_data,
    parse_request,
)
from ksi_host.errors import ConfigError

__all__ = ["Dispatch", "ServerConfig", "SocketServer"]

logger: Final = logging.getLogger("ksi_host.server")
_FLUSH_GRACE: Final = 1.0

Dispatch = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""``await dispatch(event_name, data)`` returns the answer dict (or the guide's error shape)."""


class ServerConfig(BaseModel):
    """Where the socket lives and the limits every connection is held to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    socket_path: Path = Field(default_factory=default_socket_path)
    max_line_bytes: int = Field(DEFAULT_MAX_LINE_BYTES, ge=256, le=256 * 1024 * 1024)
    max_connections: int = Field(DEFAULT_MAX_CONNECTIONS, ge=1)
    max_inflight: int = Field(DEFAULT_MAX_INFLIGHT, ge=1)
    idle_timeout: float = Field(DEFAULT_IDLE_TIMEOUT, gt=0)
    drain_timeout: float = Field(DEFAULT_DRAIN_TIMEOUT, ge=0)

    @field_validator("socket_path")
    @classmethod
    def _check_path(cls, value: Path) -> Path:
        value = value.expanduser()
        if len(os.fsencode(value.absolute())) > MAX_SOCKET_PATH:
            raise ValueError(f"a Unix socket path is at most {MAX_SOCKET_PATH} bytes")
        return value

    @classmethod
    def from_section(
        cls,
        section: Mapping[str, Any],
        *,
        where: str,
        socket_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ServerConfig:
        """The one place the socket is chosen, so ``run``, ``send`` and the transport agree.

        ``socket_path`` (``--socket``), else ``$KSI_SOCKET``, else the section's
        ``socket_path`` (the file or ``KSI_SERVER__SOCKET_PATH``), else ``ksi.sock`` in the
        run dir. A bad section is a :class:`ConfigError` naming the keys.
        """
        env = os.environ if env is None else env
        values = dict(section)
        socket_from = where
        if socket_path is not None:
            values["socket_path"], socket_from = socket_path, "--socket"
        elif env.get("KSI_SOCKET"):
            values["socket_path"], socket_from = (
                env["KSI_SOCKET"],
                "environment variable KSI_SOCKET",
            )
        elif "socket_path" not in values:
            values["socket_path"] = default_socket_path(env)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or '<section>'}: {err['msg']}"
                for err in exc.errors()
            )
            wheres = [
                socket_from
                if err["loc"] == ("socket_path",) and socket_from != where
                else env_variable(("server", *err["loc"]), env) or where
                for err in exc.errors()
            ]
            raise ConfigError(
                what=f"invalid socket settings: {problems}",
                where="; ".join(dict.fromkeys(wheres)),
                hint="allowed keys: " + ", ".join(cls.model_fields),
            ) from None


class _Connection:
    """One client: a reader loop that spawns a task per request, and a shared writer."""

    def __init__(
        self, server: SocketServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.config = server.config
        self.loop = asyncio.get_running_loop()
        self.inflight = 0
        self.room: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_activity = self.loop.time()
        self.idle_handle = self.loop.call_later(self.config.idle_timeout, self._check_idle)
        self.stopping = False
        self.lingering = False

    async def run(self) -> None:
        try:
            overlong = await self._read_loop()
            if self.tasks:
                await asyncio.wait(set(self.tasks))
            if overlong:
                await self._discard_input()
        finally:
            self.idle_handle.cancel()
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.wait(set(self.tasks))
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    async def _read_loop(self) -> bool:
        """Admit each line until EOF; True if it stopped at an over-long line."""
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip() and not self.stopping:
                    await self._admit(exc.partial)
                return False
            except asyncio.LimitOverrunError:
                self.server.count(ErrorCode.LINE_TOO_LONG)
                await self.send(
                    encode_reply(
                        None,
                        None,
                        error_data(
                            ErrorCode.LINE_TOO_LONG,
                            f"a line is longer than {self.config.max_line_bytes} bytes; the "
                            "connection is closed. Send smaller requests, or raise "
                            "max_line_bytes in the daemon's config",
                        ),
                    )
                )
                return True
            except (ConnectionError, OSError):
                return False
            if line.strip():
                await self._admit(line)

    async def _discard_input(self) -> None:
        """Half-close, then drop what the client still sends, for at most ``_FLUSH_GRACE``.

        Closing a socket with unread input resets the connection, and a client reading
        its replies then gets the reset instead of them; the rest of an over-long line is
        usually still on its way. A lingering connection no longer counts against
        ``max_connections``: the client has its EOF and may connect again at once.
        """
        if self.writer.is_closing() or not self.writer.can_write_eof():
            return
        self.lingering = True
        self.writer.write_eof()
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
            await asyncio.wait_for(self._read_to_eof(), _FLUSH_GRACE)

    async def _read_to_eof(self) -> None:
        while await self.reader.read(self.config.max_line_bytes):
            pass

    async def _admit(self, line: bytes) -> None:
        self.last_activity = self.loop.time()
        if self.stopping:
            await self._refuse(line)
            return
        if self.inflight >= self.config.max_inflight:
            self.room = self.loop.create_future()
            await self.room
            if self.stopping:
                await self._refuse(line)
                return
        self.inflight += 1
        serving = self._serve(line)
        context = contextvars.copy_context()  # its own, as a task's: see _Resumed
        try:
            pending = context.run(serving.send, None)
        except StopIteration:
            return
        task = self.loop.create_task(_finish(serving, pending, context))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refuse(self, line: bytes) -> None:
        request = parse_request(line.rstrip(b"\r\n"))
        event = request.event
        self.server.count(ErrorCode.SHUTTING_DOWN)
        await self.send(
            encode_reply(
                event,
                request.correlation_id,
                error_data(ErrorCode.SHUTTING_DOWN, "the daemon is stopping; retry later"),
            )
        )

    async def _serve(self, line: bytes) -> None:
        """Answer one line; runs eagerly in the read loop until it first has to wait."""
        request = parse_request(line.rstrip(b"\r\n"))
        try:
            if isinstance(request, ProtocolFailure):
                self.server.count(request.code)
                answer: Any = error_data(request.code, request.message)
            else:
                self.server.requests += 1
                try:
                    answer = await self.server.dispatch(request.event, request.data)
                except Exception as exc:
                    logger.exception("dispatch of %s raised", request.event)
                    self.server.count(ErrorCode.INTERNAL_ERROR)
                    answer = error_data(
                        ErrorCode.INTERNAL_ERROR,
                        f"handling {request.event!r} raised {type(exc).__name__}: {exc}",
                    )
            await self.send(encode_reply(request.event, request.correlation_id, answer))
        except asyncio.CancelledError:
            self.server.count(ErrorCode.SHUTTING_DOWN)
            self._send_nowait(
                encode_reply(
                    request.event,
                    request.correlation_id,
                    error_data(
                        ErrorCode.SHUTTING_DOWN,
                        "the daemon stopped before this request finished; retry it",
                    ),
                )
            )
            raise
        finally:
            self.inflight -= 1
            if self.room is not None and not self.room.done():
                self.room.set_result(None)
            self.last_activity = self.loop.time()
            if self.stopping and not self.inflight:
                self.writer.close()

    async def send(self, payload: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(payload)
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()

    def _send_nowait(self, payload: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(payload)

    def stop_reading(self) -> None:
        """Refuse new requests from now on; close once nothing is in flight.

        The reader keeps reading so a request sent while draining gets ``SHUTTING_DOWN``
        (feeding the reader an EOF instead makes asyncio fail on the next bytes and drop
        the replies still owed); closing the transport ends the read loop.
        """
        self.stopping = True
        if not self.inflight:
            self.writer.close()

    def cancel_requests(self) -> None:
        """At the drain deadline: what still runs is answered with ``SHUTTING_DOWN``."""
        for task in self.tasks:
            task.cancel()

    def _check_idle(self) -> None:
        remaining = self.last_activity + self.config.idle_timeout - self.loop.time()
        stalled = self.writer.transport.get_write_buffer_size() > 0
        if remaining > 0 or (self.tasks and not stalled):
            delay = remaining if remaining > 0 else self.config.idle_timeout
            self.idle_handle = self.loop.call_later(delay, self._check_idle)
            return
        if self.tasks:
            # Replies are waiting to be read and none was for idle_timeout: a client that
            # never reads would hold its connection (and a max_connections slot) forever.
            logger.warning(
                "closed a connection that read no reply for %gs", self.config.idle_timeout
            )
            self.server.count(ErrorCode.IDLE_TIMEOUT)
            self.writer.transport.abort()
            return
        self.server.count(ErrorCode.IDLE_TIMEOUT)
        self._send_nowait(
            encode_reply(
                None,
                None,
                error_data(
                    ErrorCode.IDLE_TIMEOUT,
                    f"no request for {self.config.idle_timeout:g}s; the connection is closed. "
                    "Reconnect when you have one",
                ),
            )
        )
        self.writer.close()


class _Resumed:
    """Continue, as a task, a coroutine that was started eagerly and had to wait.

    A handler that answers without waiting (most do) then costs no task and no extra
    loop iteration; asyncio offers this only from Python 3.12 (``eager_start``). Every
    step runs in the request's own ``contextvars`` context, the one its eager start ran
    in, so a context variable set before the first wait is still set (and resettable)
    after it, and never leaks into the connection's other requests.
    """

    def __init__(
        self, coro: Coroutine[Any, Any, None], pending: Any, context: contextvars.Context
    ) -> None:
        self._coro = coro
        self._pending = pending
        self._context = context

    def __await__(self) -> Generator[Any, Any, None]:
        pending = self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:
                try:
                    pending = self._context.run(self._coro.throw, exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = self._context.run(self._coro.send, value)
                except StopIteration:
                    return


async def _finish(
    coro: Coroutine[Any, Any, None], pending: Any, context: contextvars.Context
) -> None:
    await _Resumed(coro, pending, context)


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
        self._sock = sock
        self._instance: Instance | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[_Connection, asyncio.Task[Any]] = {}
        self._closed: asyncio.Event | None = None
        self.connections_total = 0
        self.requests = 0
        self.errors: Counter[str] = Counter()

    @property
    def socket_path(self) -> Path:
        return self.config.socket_path

    @property
    def serving(self) -> bool:
        return self._server is not None and self._closed is None

    def count(self, code: ErrorCode) -> None:
        self.errors[code.value] += 1

    def stats(self) -> dict[str, Any]:
        """Counters for ``ksi_metrics_collected``."""
        return {
            "socket": str(self.socket_path),
            "connections_open": len(self._connections),
            "connections_total": self.connections_total,
            "requests": self.requests,
            "errors": dict(self.errors),
        }

    async def start(self) -> None:
        if self._sock is None:
            self._instance = Instance.claim(self.config.socket_path)
            self._sock = self._instance.sock
        self._server = await asyncio.start_unix_server(
            self._accept, sock=self._sock, limit=self.config.max_line_bytes
        )
        logger.info("listening on %s", self.socket_path)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refusal = self._refusal(writer)
        if refusal is not None:
            code, message = refusal
            self.count(code)
            writer.write(encode_reply(None, None, error_data(code, message)))
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
            writer.close()
            return
        connection = _Connection(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self.connections_total += 1
        self._connections[connection] = task
        try:
            await connection.run()
        finally:
            del self._connections[connection]

    def _refusal(self, writer: asyncio.StreamWriter) -> tuple[ErrorCode, str] | None:
        if self._closed is not None:
            return ErrorCode.SHUTTING_DOWN, "the daemon is stopping; retry later"
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            logger.warning("refused a connection from uid %d", uid)
            return (
                ErrorCode.PEER_REFUSED,
                f"this daemon serves uid {os.getuid()} only, not uid {uid}; "
                "run your own with ksi-host run",
            )
        if sum(not c.lingering for c in self._connections) >= self.config.max_connections:
            return (
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"the daemon already has {self.config.max_connections} connections; close "
                "one, retry later, or raise max_connections in the daemon's config",
            )
        return None

    async def shutdown(self) -> None:
        """Stop accepting, drain in-flight requests up to the deadline, close; idempotent."""
        if self._closed is not None:
            await self._closed.wait()
            return
        self._closed = asyncio.Event()
        try:
            if self._server is not None:
                self._server.close()
            for connection in self._connections:
                connection.stop_reading()
            tasks = set(self._connections.values())
            if tasks:
                _done, late = await asyncio.wait(tasks, timeout=self.config.drain_timeout)
                if late:
                    logger.warning("cancelled %d connection(s) at the drain deadline", len(late))
                    await self._cancel(late)
            if self._server is not None:
                await self._server.wait_closed()
        finally:
            if self._instance is not None:
                self._instance.release()
            self._closed.set()
            logger.info("stopped listening on %s", self.socket_path)

    async def _cancel(self, late: set[asyncio.Task[Any]]) -> None:
        """Cancel the requests, not the connection tasks: asyncio < 3.12 logs those as errors.

        A connection whose client does not read its ``SHUTTING_DOWN`` replies within
        ``_FLUSH_GRACE`` seconds is aborted.
        """
        late_connections = [c for c, task in self._connections.items() if task in late]
        for connection in late_connections:
            connection.cancel_requests()
        _done, stuck = await asyncio.wait(late, timeout=_FLUSH_GRACE)
        for connection in late_connections:
            if self._connections.get(connection) in stuck:
                connection.writer.transport.abort()
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
