"""The event bus: publish through the host's dispatch, listen by pattern, look back at history.

Every event the host accepts (its name is valid, no filter blocked it, no validator
rejected it) is kept in a bounded ring buffer and handed to the listeners whose
pattern matches, before the handlers run. The history is bounded in entries
(``history_size``) and in bytes (``history_bytes``, counted as the data's JSON): the
oldest entries go first, and an event whose data alone is larger than
``HISTORY_ITEM_BYTES`` is kept as a summary (its size, its keys and the start of its
JSON) instead of in full. The history keeps the data as it was accepted, and each
listener gets its own copy of it, so what a handler or a listener does to its data
changes no history entry. Listeners make the guide's
request/response pattern work: publish with a ``correlation_id`` and wait for the
event that carries it back::

    reply = await bus.wait_for("service:response", lambda data: data["correlation_id"] == cid)

A listener is ``listener(event_name, data)``, a plain function or a coroutine
function; it is awaited in turn, and one that raises is logged and skipped.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Protocol

from pydantic_core import to_json

from ksi_host._defaults import HISTORY_BYTES, HISTORY_SIZE
from ksi_host._snapshot import snapshot
from ksi_host.events import check_event_name, normalise_namespace

__all__ = [
    "DEFAULT_HISTORY_BYTES",
    "DEFAULT_HISTORY_SIZE",
    "HISTORY_ITEM_BYTES",
    "EventBus",
    "Listener",
    "Router",
]

logger: Final = logging.getLogger("ksi_host.bus")

DEFAULT_HISTORY_SIZE: Final = HISTORY_SIZE
DEFAULT_HISTORY_BYTES: Final = HISTORY_BYTES
HISTORY_ITEM_BYTES: Final = 64 * 1024
"""Data larger than this (as JSON) is kept in the history as a summary."""
_PREVIEW_BYTES: Final = 256
_FLAT: Final = frozenset({int, float, bool, type(None)})

Listener = Callable[[str, dict[str, Any]], Any]
"""``listener(event_name, data)``; may return an awaitable, which the bus awaits."""


class Router(Protocol):
    """What the bus publishes through: the host's ``dispatch``."""

    def __call__(
        self, event_name: str, data: dict[str, Any], context: Mapping[str, Any] | None = None
    ) -> Awaitable[Any]: ...


@dataclass(frozen=True, eq=False)
class _Subscription:
    listener: Listener
    pattern: str
    matches: Callable[[str], object]


def _matcher(pattern: str) -> Callable[[str], object]:
    """``*`` is everything, ``system`` or ``/system`` a namespace, else a glob on the name."""
    if pattern == "*":
        return bool
    if ":" not in pattern:
        prefix = normalise_namespace(pattern) + ":"
        return lambda name: name.startswith(prefix)
    if not any(char in pattern for char in "*?["):
        exact = check_event_name(pattern)
        return lambda name: name == exact
    return re.compile(fnmatch.translate(pattern)).match


def _json_size(data: dict[str, Any]) -> int:
    """About how many bytes ``data`` takes as JSON: exact enough to budget the history.

    Flat data (strings and numbers, the common case) is sized without encoding it;
    anything nested is encoded once.
    """
    size = 2
    for key, value in data.items():
        kind = type(value)
        if kind is str:
            size += len(key) + len(value) + 6
        elif kind in _FLAT:
            size += len(key) + 24
        else:
            return len(to_json(data, fallback=repr))
    return size


def _summary(data: dict[str, Any], size: int) -> dict[str, Any]:
    """What the history keeps of data too large to keep: its size, keys and first bytes."""
    preview = to_json(data, fallback=repr)[:_PREVIEW_BYTES].decode(errors="replace")
    return {
        "truncated": True,
        "bytes": size,
        "keys": sorted(map(str, data))[:32],
        "preview": preview,
    }


class EventBus:
    """Publish/subscribe over the host's dispatch, with a bounded event history."""

    def __init__(
        self,
        route: Router,
        *,
        history_size: int = DEFAULT_HISTORY_SIZE,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        if history_size < 0:
            raise ValueError(f"history_size must be 0 or more, not {history_size}")
        if history_bytes < 0:
            raise ValueError(f"history_bytes must be 0 or more, not {history_bytes}")
        self._route = route
        self._history: deque[tuple[float, str, str, dict[str, Any], int]] = deque()
        self._history_size = history_size
        self._history_bytes = history_bytes
        self._item_bytes = min(HISTORY_ITEM_BYTES, history_bytes)
        self._held_bytes = 0
        self._subscriptions: list[_Subscription] = []

    async def publish(
        self,
        event_name: str,
        data: dict[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send an event through the host's pipeline and return its answer."""
        return await self._route(event_name, {} if data is None else data, context)

    async def emit(self, event_name: str, data: dict[str, Any] | None = None) -> Any:
        """The guide's ``context.emit(name, data)``: :meth:`publish` without a context."""
        return await self.publish(event_name, data)

    def subscribe(self, listener: Listener, pattern: str = "*") -> Callable[[], None]:
        """Call ``listener`` for each accepted event matching ``pattern``; return an undo."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        subscription = _Subscription(listener, pattern, _matcher(pattern))
        self._add(subscription)

        def unsubscribe() -> None:
            self._remove(subscription)

        return unsubscribe

    def unsubscribe(self, listener: Listener) -> bool:
        """Remove every subscription of ``listener``; say whether there was one."""
        found = [s for s in self._subscriptions if s.listener == listener]
        for subscription in found:
            self._remove(subscription)
        return bool(found)

    def _add(self, subscription: _Subscription) -> None:
        self._subscriptions.append(subscription)

    def _remove(self, subscription: _Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def wait_for(
        self,
        pattern: str,
        predicate: Callable[[dict[str, Any]], object] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """The next accepted event matching ``pattern`` (and ``predicate``), as a history entry."""
        import asyncio  # here, not at the top: `import ksi_host` stays free of asyncio

        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def listener(event_name: str, data: dict[str, Any]) -> None:
            if not future.done() and (predicate is None or predicate(data)):
                future.set_result(self._entry(time.time(), event_name, data))

        unsubscribe = self.subscribe(listener, pattern)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            unsubscribe()

    def get_event_history(
        self, namespace: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recent accepted events, oldest first: ``timestamp`` (ISO 8601), ``name``, ``data``."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        wanted = None if namespace is None else normalise_namespace(namespace)
        entries = [e for e in self._history if wanted is None or e[2] == wanted]
        if limit is not None:
            entries = entries[len(entries) - limit :] if limit else []
        return [self._entry(stamp, name, snapshot(data)) for stamp, name, _, data, _ in entries]

    @property
    def history_bytes(self) -> int:
        """The bytes (as JSON) the history holds now; never more than its budget."""
        return self._held_bytes

    def record(self, event_name: str, namespace: str, data: dict[str, Any]) -> bool:
        """Keep an accepted event in the history; say whether listeners are waiting for it."""
        size = _json_size(data)
        if size > self._item_bytes:
            data = _summary(data, size)
            size = _json_size(data)
        history = self._history
        history.append((time.time(), event_name, namespace, data, size))
        self._held_bytes += size
        while len(history) > self._history_size or self._held_bytes > self._history_bytes:
            self._held_bytes -= history.popleft()[4]
        return bool(self._subscriptions)

    async def notify(self, event_name: str, data: dict[str, Any]) -> None:
        """Hand an accepted event to each matching listener; a failing listener is logged."""
        for subscription in tuple(self._subscriptions):
            if subscription.matches(event_name):
                await self._deliver(subscription, event_name, snapshot(data))

    @staticmethod
    async def _deliver(subscription: _Subscription, event_name: str, data: dict[str, Any]) -> None:
        """Call one listener with its own ``data``; one that raises is logged."""
        try:
            result = subscription.listener(event_name, data)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception(
                "event listener %r (pattern %r) failed on %r",
                subscription.listener,
                subscription.pattern,
                event_name,
            )

    @staticmethod
    def _entry(stamp: float, event_name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "timestamp": datetime.fromtimestamp(stamp, timezone.utc).isoformat(),
            "name": event_name,
            "data": data,
        }
