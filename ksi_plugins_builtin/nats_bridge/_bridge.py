"""One host's link to NATS: serve exported namespaces, forward imported ones, relay pub/sub.

- **export**: a queue subscription per namespace (queue group = the namespace), so hosts
  exporting the same namespace share its requests and each request is answered once;
  each request runs through this host's own pipeline and is answered with its reply.
- **import**: the host's fallback for the namespace (an event no local plugin answered)
  becomes a NATS request; no responder is ``NO_HANDLER``, no answer in time ``TIMEOUT``,
  no connection ``UNAVAILABLE``.
- **publish**: a bus listener publishes each accepted event of the namespace.
- **subscribe**: publications of the namespace go to this host's bus listeners and history.

Loops: a message carries its origin (``Ksi-Origin``); a host ignores its own publications
coming back, never publishes an event it received over NATS, never forwards a request it
was sent, and carries the emit chain (``Ksi-Chain``) so ``[host] max_emit_depth`` bounds
events that bounce between hosts. The connection is nats-py's: it reconnects by itself,
and the bridge logs once when an outage starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from ksi_host import ErrorCode, error_reply
from ksi_host._for_builtins import (
    Host,
    ProtocolFailure,
    continued_chain,
    emit_chain,
    encode_reply,
    parse_request,
)
from ksi_host.events import split_event_name
from ksi_plugins_builtin.nats_bridge._settings import NatsSettings, connect_options, nats_client
from ksi_plugins_builtin.nats_bridge._wire import (
    CHAIN_HEADER,
    INBOUND,
    ORIGIN_HEADER,
    chain_from,
    chain_header,
    encode_message,
    event_for,
    namespace_subject,
    reply_data,
    subject_for,
)

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = ["Bridge"]

logger: Final = logging.getLogger("ksi_plugins_builtin.nats")

_RECEIVED: Final[ContextVar[str | None]] = ContextVar("ksi_nats_received", default=None)
"""The event this task is handling because it arrived over NATS: never published again."""


@dataclass(slots=True)
class BridgeStats:
    """What crossed the bridge, for ``system:metrics``."""

    forwarded: int = 0
    served: int = 0
    published: int = 0
    received: int = 0
    no_responders: int = 0
    timeouts: int = 0
    unavailable: int = 0
    dropped: int = 0
    invalid: int = 0
    outages: int = 0


class Bridge:
    """The bridge of one running host, from ``start`` to ``stop``."""

    def __init__(self, settings: NatsSettings, host: Host, *, plugin: str) -> None:
        self.settings: Final = settings
        self.origin: Final = settings.name or f"{socket.gethostname()}-{os.getpid()}"
        self.stats: Final = BridgeStats()
        self._nats: Final = nats_client()
        self._host: Final = host
        self._plugin: Final = plugin
        self._nc: Client | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._room: Final = asyncio.Semaphore(settings.max_inflight)
        self._serving: Final[set[asyncio.Task[None]]] = set()
        self._listeners: list[Callable[[], None]] = []
        self._exports: list[Subscription] = []
        self._ids: Final = itertools.count(1)
        self._outage_since: float | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        """Claim the imported namespaces and listen for publishable events; connect.

        Waits up to ``connect_timeout`` for the first connection, so a reachable server
        serves exports before the host says it is ready; otherwise keeps trying behind.
        """
        settings = self.settings
        if settings.import_:
            self._host.fall_back(self._plugin, settings.import_, self.forward)
        bus = self._host.bus
        self._listeners = [bus.subscribe(self._publish_local, ns) for ns in settings.publish]
        self._connecting = asyncio.create_task(self._connect(), name="ksi-nats-connect")
        await asyncio.wait((self._connecting,), timeout=settings.connect_timeout)
        if not self._connecting.done() and self._outage_since is None:
            logger.warning(
                "NATS: not connected to %s yet; imported events answer UNAVAILABLE until the "
                "bridge connects (it keeps trying every %g s)",
                settings.shown_servers(),
                settings.reconnect_wait,
            )

    async def stop(self) -> None:
        """Give the namespaces back, answer the requests being served, close the connection.

        Other hosts' requests stop coming first (the exports are unsubscribed), so the
        ones in flight get their answers and the next ones go to the other exporters.
        """
        self._host.fall_back(self._plugin, (), None)
        for unsubscribe in self._listeners:
            unsubscribe()
        self._listeners = []
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for subscription in self._exports:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        if self._serving:
            await asyncio.wait(tuple(self._serving), timeout=self.settings.timeout)
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.drain(), self.settings.timeout)
            except Exception as exc:  # a broken connection cannot drain: close it
                logger.info("NATS: closing without draining: %s", exc or type(exc).__name__)
            finally:
                await nc.close()
        for task in tuple(self._serving):
            task.cancel()

    def metrics(self) -> dict[str, Any]:
        """The connection and the counters."""
        return {
            "connected": self.connected,
            "origin": self.origin,
            "servers": self.settings.shown_servers(),
            **asdict(self.stats),
        }

    # --- the connection ---

    async def _connect(self) -> None:
        settings = self.settings
        nc: Client = await self._nats.connect(
            **connect_options(settings, self.origin),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._exports = [
            await nc.subscribe(namespace_subject(ns), queue=ns, cb=self._on_request)
            for ns in settings.export
        ]
        for ns in settings.subscribe:
            await nc.subscribe(namespace_subject(ns), cb=self._on_publication)
        await nc.flush()
        self._nc = nc
        recovered = self._outage_ended()
        logger.info(
            "NATS: connected to %s as %r%s (export %s, import %s, publish %s, subscribe %s)",
            _shown(nc),
            self.origin,
            recovered,
            list(settings.export),
            list(settings.import_),
            list(settings.publish),
            list(settings.subscribe),
        )

    def _outage_started(self, why: str) -> None:
        if self._outage_since is not None:
            logger.debug("NATS: still unreachable: %s", why)
            return
        self._outage_since = time.monotonic()
        self.stats.outages += 1
        logger.warning(
            "NATS: %s (servers %s); reconnecting every %g s, imported events answer "
            "UNAVAILABLE meanwhile",
            why,
            self.settings.shown_servers(),
            self.settings.reconnect_wait,
        )

    def _outage_ended(self) -> str:
        if self._outage_since is None:
            return ""
        lasted = time.monotonic() - self._outage_since
        self._outage_since = None
        return f" after {lasted:.1f} s without a connection"

    async def _on_error(self, exc: Exception) -> None:
        self._outage_started(f"cannot reach the NATS server: {exc or type(exc).__name__}")

    async def _on_disconnected(self) -> None:
        if self._nc is not None:
            self._outage_started("lost the connection to the NATS server")

    async def _on_reconnected(self) -> None:
        if self._nc is not None:
            logger.info("NATS: reconnected to %s%s", _shown(self._nc), self._outage_ended())

    # --- import: events no local plugin answered ---

    async def forward(
        self, event_name: str, data: dict[str, Any], context: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Ask the hosts exporting the event's namespace; answer as a local plugin would."""
        namespace, _ = split_event_name(event_name)
        subject = subject_for(event_name)
        if context is not None and INBOUND in context:
            return error_reply(
                ErrorCode.NO_HANDLER,
                f"no plugin handles {event_name!r} on host {self.origin!r}, which exports "
                f"namespace {namespace!r} over NATS; a request is never forwarded twice",
            )
        nc = self._nc
        if nc is None or not nc.is_connected:
            return self._unavailable(event_name)
        correlation_id = f"{self.origin}-{next(self._ids)}"
        headers = {ORIGIN_HEADER: self.origin}
        chain = emit_chain()
        if chain:
            headers[CHAIN_HEADER] = chain_header(chain)
        errors = self._nats.errors
        self.stats.forwarded += 1
        try:
            reply = await nc.request(
                subject,
                encode_message(event_name, data, correlation_id),
                timeout=self.settings.timeout,
                headers=headers,
            )
        except errors.NoRespondersError:
            self.stats.no_responders += 1
            return error_reply(
                ErrorCode.NO_HANDLER,
                f"no plugin handles {event_name!r} here, and no host serves namespace "
                f"{namespace!r} over NATS (no responder on {subject}; [nats] import of plugin "
                f"{self._plugin!r}); start a host whose [nats] export lists {namespace!r}",
            )
        except errors.TimeoutError:
            if not nc.is_connected:
                return self._unavailable(event_name)
            self.stats.timeouts += 1
            return error_reply(
                ErrorCode.TIMEOUT,
                f"no host answered {event_name!r} over NATS within {self.settings.timeout:g} s "
                f"(subject {subject}); the host serving it is stuck or overloaded; retry, or "
                "raise [nats] timeout",
            )
        except errors.MaxPayloadError:
            return error_reply(
                ErrorCode.INVALID_INPUT,
                f"{event_name!r} is larger than the NATS server's max_payload "
                f"({nc.max_payload} bytes) and cannot be forwarded; send less data",
            )
        except (errors.Error, OSError):
            return self._unavailable(event_name)
        try:
            return reply_data(reply.data, correlation_id)
        except ValueError as exc:
            logger.error("NATS: bad reply to %r on %s: %s", event_name, subject, exc)
            return error_reply(
                ErrorCode.INTERNAL_ERROR,
                f"the host that answered {event_name!r} over NATS sent a bad reply: {exc}",
            )

    def _unavailable(self, event_name: str) -> dict[str, Any]:
        self.stats.unavailable += 1
        return error_reply(
            ErrorCode.UNAVAILABLE,
            f"{event_name!r} is served by another host over NATS, but the NATS server is "
            f"unreachable ({self.settings.shown_servers()}); the bridge reconnects by itself: "
            "retry later, and see `ksi-host doctor`",
        )

    # --- export: requests from other hosts ---

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return  # a publication on an exported subject is for subscribers, not for us
        await self._room.acquire()
        task = asyncio.create_task(self._serve(msg))
        self._serving.add(task)
        task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        self._serving.discard(task)
        self._room.release()

    async def _serve(self, msg: Msg) -> None:
        try:
            event, correlation_id, answer = await self._answer(msg)
        except Exception as exc:  # our bug: still answer, so the asker does not wait
            logger.exception("NATS: serving a request on %s failed", msg.subject)
            event, correlation_id = None, None
            answer = error_reply(
                ErrorCode.INTERNAL_ERROR, f"host {self.origin!r} failed to serve it: {exc!r}"
            )
        try:
            await msg.respond(encode_reply(event, correlation_id, answer).rstrip(b"\n"))
        except Exception as exc:  # the asker is gone, or the connection is
            logger.info("NATS: could not reply to %r on %s: %s", event, msg.subject, exc)

    async def _answer(self, msg: Msg) -> tuple[str | None, str | int | None, Any]:
        request = _request_of(msg)
        if isinstance(request, ProtocolFailure):
            self.stats.invalid += 1
            return request.event, request.correlation_id, error_reply(request.code, request.message)
        event, data, correlation_id = request
        headers = msg.headers or {}
        context = {INBOUND: {"origin": headers.get(ORIGIN_HEADER), "subject": msg.subject}}
        self.stats.served += 1
        token = _RECEIVED.set(event)
        try:
            with continued_chain(chain_from(headers.get(CHAIN_HEADER))):
                answer = await self._host.dispatch(event, data, context)
        finally:
            _RECEIVED.reset(token)
        return event, correlation_id, answer

    # --- publish and subscribe ---

    def _publish_local(self, event_name: str, data: dict[str, Any]) -> Awaitable[None] | None:
        if _RECEIVED.get() == event_name:
            return None  # it came over NATS: the host where it entered published it
        nc = self._nc
        if nc is None or nc.is_closed:
            self.stats.dropped += 1
            return None
        return self._publish(nc, event_name, data)

    async def _publish(self, nc: Client, event_name: str, data: dict[str, Any]) -> None:
        try:
            await nc.publish(
                subject_for(event_name),
                encode_message(event_name, data, None),
                headers={ORIGIN_HEADER: self.origin},
            )
        except (self._nats.errors.Error, OSError) as exc:
            self.stats.dropped += 1
            self._outage_started(f"cannot publish {event_name!r}: {exc or type(exc).__name__}")
        else:
            self.stats.published += 1

    async def _on_publication(self, msg: Msg) -> None:
        if msg.reply or (msg.headers or {}).get(ORIGIN_HEADER) == self.origin:
            return  # a request (for exporters), or our own publication coming back
        request = _request_of(msg)
        if isinstance(request, ProtocolFailure):
            self.stats.invalid += 1
            logger.warning("NATS: dropped a publication on %s: %s", msg.subject, request.message)
            return
        event, data, _ = request
        self.stats.received += 1
        bus = self._host.bus
        token = _RECEIVED.set(event)
        try:
            if bus.record(event, split_event_name(event)[0], data):
                await bus.notify(event, data)
        finally:
            _RECEIVED.reset(token)


def _request_of(msg: Msg) -> tuple[str, dict[str, Any], str | int | None] | ProtocolFailure:
    """The event, data and id a message carries; an empty payload is the subject's event."""
    subject_event = event_for(msg.subject)
    if not msg.data and subject_event is not None:
        return subject_event, {}, None
    request = parse_request(msg.data)
    if isinstance(request, ProtocolFailure):
        return request
    if request.event != subject_event:
        return ProtocolFailure(
            ErrorCode.INVALID_REQUEST,
            f"event {request.event!r} was sent on subject {msg.subject}; send it on "
            f"{subject_for(request.event)}",
            event=request.event,
            correlation_id=request.correlation_id,
        )
    return request.event, request.data, request.correlation_id


def _shown(nc: Client) -> str:
    url = nc.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else "?"
