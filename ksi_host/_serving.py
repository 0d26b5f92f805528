"""What every transport does with one message: read it, dispatch it, encode the reply.

The Unix socket and the WebSocket transport share this, so a request gets the same
validation, the same error codes and the same counters whichever way it came in.
A request's dispatch is started in place (:meth:`Requests.start`): a handler that answers
without waiting, as most do, costs no task, no coroutine of ours and no extra turn of the
event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Final

from ksi_host._crash_record import RECORD
from ksi_host._current import CURRENT_REQUEST
from ksi_host._protocol import ProtocolFailure, Request, encode_reply
from ksi_host.replies import ErrorCode, error_reply

__all__ = [
    "Dispatch",
    "Requests",
    "TransportStats",
    "refusal",
    "resume",
    "shutting_down",
    "start_eagerly",
    "too_long",
]

logger: Final = logging.getLogger("ksi_host.server")

Dispatch = Callable[[str, dict[str, Any]], Coroutine[Any, Any, Any]]
"""``await dispatch(event_name, data)`` returns the answer dict (or the guide's error shape)."""


@dataclass(slots=True)
class TransportStats:
    """The counters one transport adds to ``system:metrics``."""

    connections_total: int = 0
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def count(self, code: ErrorCode) -> None:
        self.errors[code.value] += 1

    def as_dict(self, connections_open: int) -> dict[str, Any]:
        return {
            "connections_open": connections_open,
            "connections_total": self.connections_total,
            "requests": self.requests,
            "errors": dict(self.errors),
        }


def shutting_down(
    stats: TransportStats, request: Request | ProtocolFailure, *, started: bool
) -> bytes:
    """The reply to a request the daemon will not finish because it is stopping."""
    stats.count(ErrorCode.SHUTTING_DOWN)
    message = (
        "the daemon stopped before this request finished; retry it"
        if started
        else "the daemon is stopping; retry later"
    )
    return encode_reply(
        request.event, request.correlation_id, error_reply(ErrorCode.SHUTTING_DOWN, message)
    )


def refusal(stats: TransportStats, code: ErrorCode, message: str) -> bytes:
    """A reply that answers no request (a refused connection, an idle one, a broken limit)."""
    stats.count(code)
    return encode_reply(None, None, error_reply(code, message))


def too_long(stats: TransportStats, limit: int, unit: str) -> bytes:
    """The ``LINE_TOO_LONG`` reply to a ``unit`` (line, message) over ``max_line_bytes``."""
    return refusal(
        stats,
        ErrorCode.LINE_TOO_LONG,
        f"a {unit} is longer than {limit} bytes; the connection is closed. Send smaller "
        "requests, or raise max_line_bytes in the daemon's config",
    )


class Requests:
    """One connection's requests: each started eagerly, answered through ``reply``.

    Both transports serve through this, so a request is counted, answered, cancelled
    at the drain deadline and answered ``SHUTTING_DOWN`` the same way on each.
    ``reply(line)`` writes a reply without waiting (the transport bounds what waits to
    be read); ``settled()`` runs after each request that had to wait has finished, so
    the transport can read again or close.
    """

    __slots__ = ("_dispatch", "_reply", "_settled", "_stats", "inflight", "stopping", "tasks")

    def __init__(
        self,
        dispatch: Dispatch,
        stats: TransportStats,
        reply: Callable[[bytes], None],
        settled: Callable[[], None],
    ) -> None:
        self._dispatch = dispatch
        self._stats = stats
        self._reply = reply
        self._settled = settled
        self.inflight = 0
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, request: Request | ProtocolFailure) -> None:
        """Answer ``request``, at once if it can be (refused, or a handler that does not wait).

        The dispatch coroutine is sent its first step here, in the request's own
        ``contextvars`` context; only one that waits costs a task (:meth:`_finish`).
        """
        if self.stopping:
            self._reply(shutting_down(self._stats, request, started=False))
        elif isinstance(request, ProtocolFailure):
            self._stats.count(request.code)
            self._reply(
                encode_reply(
                    request.event,
                    request.correlation_id,
                    error_reply(request.code, request.message),
                )
            )
        else:
            self._stats.requests += 1
            context = contextvars.copy_context()
            try:
                coro, pending = context.run(_first_step, self._dispatch, request)
            except StopIteration as done:
                self._reply(encode_reply(request.event, request.correlation_id, done.value))
            except Exception as exc:
                self._reply(context.run(self._failed, request, exc))
            else:
                self.inflight += 1
                task = start_eagerly(self._finish(request, coro, pending), context)
                if task is not None:
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)

    def stop(self) -> None:
        """Answer the requests that arrive from now on with ``SHUTTING_DOWN``."""
        self.stopping = True

    def cancel(self) -> None:
        """At the drain deadline: what still runs is answered with ``SHUTTING_DOWN``."""
        for task in self.tasks:
            task.cancel()

    def _failed(self, request: Request, exc: Exception) -> bytes:
        """The ``INTERNAL_ERROR`` reply to a dispatch that raised, which is logged."""
        logger.error("dispatch of %s raised", request.event, exc_info=exc)
        self._stats.count(ErrorCode.INTERNAL_ERROR)
        return encode_reply(
            request.event,
            request.correlation_id,
            error_reply(
                ErrorCode.INTERNAL_ERROR,
                f"handling {request.event!r} raised {type(exc).__name__}: {exc}",
            ),
        )

    async def _finish(self, request: Request, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        """The rest of a dispatch that waited, in its context; then settled."""
        try:
            try:
                result = await resume(coro, pending)
            except Exception as exc:
                reply = self._failed(request, exc)
            else:
                reply = encode_reply(request.event, request.correlation_id, result)
        except asyncio.CancelledError:
            self._reply(shutting_down(self._stats, request, started=True))
            raise
        else:
            self._reply(reply)
        finally:
            self.inflight -= 1
            self._settled()


def _first_step(dispatch: Dispatch, request: Request) -> tuple[Coroutine[Any, Any, Any], Any]:
    """In the request's context: mark it current, start its dispatch; StopIteration if done."""
    CURRENT_REQUEST.set((request.event, request.correlation_id))
    coro = dispatch(request.event, request.data)
    return coro, coro.send(None)


def start_eagerly(
    coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None
) -> asyncio.Task[None] | None:
    """Run ``coro`` now until it first waits; only then does it become a task.

    asyncio offers this only from Python 3.12 (``eager_start``). Like a task, ``coro``
    runs in its own copy of the ``contextvars`` context (or in ``context``), from its
    first step to its last.
    """
    if context is None:
        context = contextvars.copy_context()
    try:
        pending = context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(resume(coro, pending, context))


class _Resumed:
    """Continue, as a task, a coroutine that was started eagerly and had to wait.

    Every step runs in the request's own ``contextvars`` context, the one its eager
    start ran in, so a context variable set before the first wait is still set (and
    resettable) after it, and never leaks into the connection's other requests.
    Without a context, the steps run in the caller's, which then is that one.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        pending: Any,
        context: contextvars.Context | None,
        stamp: bytes | None,
    ) -> None:
        self._coro = coro
        self._pending = pending
        self._context = context
        self._stamp = stamp

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self._pending
        stamp = self._stamp
        context = self._context
        step: Callable[[Any], Any]
        while True:
            try:
                value = yield pending
            except BaseException as exc:
                step, value = self._coro.throw, exc
            else:
                step = self._coro.send
            if stamp is not None:
                RECORD.write(stamp)
            try:
                pending = step(value) if context is None else context.run(step, value)
            except StopIteration as done:
                return done.value


async def resume(
    coro: Coroutine[Any, Any, Any],
    pending: Any,
    context: contextvars.Context | None = None,
    stamp: bytes | None = None,
) -> Any:
    """The rest of ``coro``, which yielded ``pending`` when first sent ``None`` in ``context``.

    Without ``context``, the one ``coro`` started in is the caller's (see :meth:`Requests._finish`).
    Also how :func:`ksi_host._deadline.within` continues a call into a plugin that waits;
    ``stamp`` is then its line in the crash record, written before each of its steps.
    """
    return await _Resumed(coro, pending, context, stamp)
