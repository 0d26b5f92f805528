"""The worker process of one isolated plugin: ``python -m ksi_host._worker FD FD2``.

It reads the host's ``hello`` on the inherited socket ``FD`` (see :mod:`ksi_host._wire`),
checks the protocol version, applies the memory and CPU-time limits to itself, imports
the plugin exactly as the host would (:func:`~ksi_host._describe.describe`), and
answers ``ready`` with the hooks the plugin implements. Then it runs each ``call``
as a task and answers ``result`` or ``error``; the plugin's ``context.emit`` and
``context["event_bus"].publish`` become requests to the host, answered the same way,
and the rest of the event bus is proxied too (:class:`RemoteBus`). ``FD2``, the second
argument, is the blocking line for ``get_event_history``.
It exits when the host closes the channel, and dies with the host (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import resource
import signal
import socket
import sys
import traceback
from collections.abc import Mapping
from typing import Any, Final

from ksi_host._bus import EventBus, _Subscription
from ksi_host._config import plugin_settings
from ksi_host._describe import describe
from ksi_host._dispatch import call_hookimpl, continued_chain, emit_chain
from ksi_host._doctor.worker import candidate_from_wire
from ksi_host._plan import PluginSpec
from ksi_host._serving import start_eagerly
from ksi_host._wire import (
    PROTOCOL_VERSION,
    encode_message,
    read_message,
    receive_message,
    write_message,
)
from ksi_host.context import PluginContext
from ksi_host.errors import PluginConfigInvalid
from ksi_host.plugin_manager import KsiPluggyManager

__all__ = ["main"]

logger: Final = logging.getLogger("ksi_host.worker")

_PR_SET_PDEATHSIG: Final = 1


class _Channel:
    """The worker's end: calls in from the host, requests out to it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        write_message(self.writer, message)

    async def request(self, op: str, **fields: Any) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.send({"op": op, "id": self.next_id, **fields})
        return await future


class _Query:
    """The worker's blocking line to the host, for what a plugin asks without awaiting."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        sock.settimeout(timeout)
        self._sock = sock
        self._timeout = timeout
        self._next_id = 0

    def ask(self, op: str, **fields: Any) -> Any:
        self._next_id += 1
        self._sock.sendall(encode_message({"op": op, "id": self._next_id, **fields}))
        while True:
            try:
                answer = receive_message(self._sock)
            except TimeoutError:
                raise TimeoutError(
                    f"the host did not answer {op} within {self._timeout:g} s (its event loop "
                    "is blocked; see its log)"
                ) from None
            if answer is None:
                raise ConnectionError(f"the host closed the channel before answering {op}")
            if answer.get("id") == self._next_id:  # a late answer to a question given up on
                break
        if answer.get("op") == "error":
            raise ValueError(answer.get("message", "the host refused"))
        return answer.get("value")


class RemoteBus(EventBus):
    """``context["event_bus"]`` in a worker: the host's bus, reached over the channel.

    ``publish``/``emit`` go through the host's pipeline. ``subscribe`` asks the host to
    forward the events matching the pattern (a listener of the host's bus that sends
    ``event`` here); the listener runs here, and the undo (or ``unsubscribe``) tells the
    host to stop. ``wait_for`` is the bus's own, built on ``subscribe``.
    ``get_event_history`` asks the host over the blocking query line.
    """

    def __init__(self, channel: _Channel, query: _Query) -> None:
        super().__init__(self._publish, history_size=0, history_bytes=0)
        self._channel = channel
        self._query = query
        self._ids: dict[_Subscription, int] = {}
        self._by_id: dict[int, _Subscription] = {}
        self._next_id = 0

    async def _publish(
        self, event_name: str, data: dict[str, Any], context: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._channel.request("emit", event=event_name, data=data, chain=emit_chain())

    def _add(self, subscription: _Subscription) -> None:
        super()._add(subscription)
        self._next_id += 1
        self._ids[subscription] = self._next_id
        self._by_id[self._next_id] = subscription
        self._channel.send(
            {"op": "subscribe", "sub": self._next_id, "pattern": subscription.pattern}
        )

    def _remove(self, subscription: _Subscription) -> None:
        super()._remove(subscription)
        sub = self._ids.pop(subscription, None)
        if sub is not None:
            del self._by_id[sub]
            self._channel.send({"op": "unsubscribe", "sub": sub})

    async def forwarded(self, message: Mapping[str, Any]) -> None:
        """An event the host forwarded for one subscription: hand it to its listener."""
        subscription = self._by_id.get(message["sub"])
        if subscription is not None:  # else unsubscribed while the event was on its way
            with continued_chain(tuple(message.get("chain") or ())):
                await self._deliver(subscription, message["name"], message.get("data") or {})

    def get_event_history(
        self, namespace: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The host's history (see :meth:`EventBus.get_event_history`), asked for and waited on."""
        history: list[dict[str, Any]] = self._query.ask("history", namespace=namespace, limit=limit)
        return history


def _limit(memory_mb: int | None, cpu_seconds: int | None) -> None:
    if memory_mb is not None:
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if cpu_seconds is not None:  # SIGXCPU at the limit; SIGKILL a second later
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: EOF on the channel still ends us
        pass


def _load(hello: Mapping[str, Any]) -> PluginSpec | str:
    """The plugin as the host would load it, or why it cannot be."""
    sys.path[:] = hello["sys_path"]
    described = describe([candidate_from_wire(hello["candidate"])])
    if described.specs:
        return described.specs[0]
    reason = described.excluded[0].reason
    return f"{reason.message}\n{reason.traceback or ''}".rstrip()


async def _serve(fd: int, query_fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    channel = _Channel(reader, writer)
    hello = await read_message(reader)
    if hello is None:
        return
    if hello.get("protocol") != PROTOCOL_VERSION:
        channel.send(
            {
                "op": "fatal",
                "message": f"the worker speaks protocol {PROTOCOL_VERSION}, the host "
                f"{hello.get('protocol')}: the worker runs another ksi-host ({__file__})",
            }
        )
        await writer.drain()
        return
    _limit(hello.get("memory_mb"), hello.get("cpu_seconds"))
    loaded = _load(hello)
    if isinstance(loaded, str):
        channel.send({"op": "fatal", "message": loaded})
        await writer.drain()
        return
    config = hello.get("config", {})
    try:
        settings = plugin_settings(loaded.name, loaded.plugin, hello.get("section"))
    except PluginConfigInvalid as exc:
        channel.send(
            {"op": "fatal", "message": f"{exc.what}; {exc.hint}", "config_invalid": exc.problems}
        )
        await writer.drain()
        return
    manager = KsiPluggyManager()
    manager.register(loaded.plugin, name=loaded.name)
    impls = {
        hook: list(reversed(getattr(manager.hook, hook).get_hookimpls()))
        for hook in (h for h in dir(manager.hook) if h.startswith("ksi_"))
    }
    hooks = sorted(hook for hook, found in impls.items() if found)
    bus = RemoteBus(channel, _Query(socket.socket(fileno=query_fd), hello["call_timeout"]))
    context = PluginContext(plugin=loaded.name, config=config, settings=settings, event_bus=bus)
    channel.send({"op": "ready", "protocol": PROTOCOL_VERSION, "pid": os.getpid(), "hooks": hooks})
    tasks: set[asyncio.Task[None]] = set()
    while True:
        message = await read_message(reader)
        if message is None:
            return
        if message["op"] in ("call", "event"):
            work = (
                _call(channel, impls, context, message)
                if message["op"] == "call"
                else bus.forwarded(message)
            )
            task = start_eagerly(work)
            if task is not None:  # a hook or listener that does not wait costs no task
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        elif message["op"] in ("result", "error"):
            future = channel.waiting.pop(message["id"], None)
            if future is not None and not future.done():
                if message["op"] == "result":
                    future.set_result(message.get("value"))
                else:
                    future.set_exception(RuntimeError(message.get("message", "host error")))


async def _call(
    channel: _Channel,
    impls: Mapping[str, list[Any]],
    context: PluginContext,
    message: Mapping[str, Any],
) -> None:
    hook, args = message["hook"], dict(message.get("args", {}))
    if "context" in args or hook in ("ksi_plugin_context", "ksi_handle_event"):
        args["context"] = context
    value = None
    try:
        with continued_chain(tuple(message.get("chain") or ())):  # the host's, for its emits
            for impl in impls.get(hook, ()):
                answer = await call_hookimpl(impl, **args)
                if answer is not None:
                    value = answer
                    break
    except BaseException as exc:
        channel.send(
            {
                "op": "error",
                "id": message["id"],
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
            }
        )
        if not isinstance(exc, Exception):
            raise
        return
    channel.send({"op": "result", "id": message["id"], "value": value})


def main() -> None:
    """Run the worker on the file descriptor given as the only argument."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when we stop
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)-7s %(name)s[worker {os.getpid()}]: %(message)s",
    )
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2])))


if __name__ == "__main__":
    main()
