"""What the host does for an isolated plugin's context: its emits, subscriptions and history.

A worker's ``context.emit`` and ``context["event_bus"]`` (:class:`ksi_host._worker.RemoteBus`)
become requests on its channel (:mod:`ksi_host._wire`). :class:`WorkerServices` serves
them on the host against the plugin's host-side context: an emit goes through the host's
pipeline, nested in the emit chain the request carries (so ``EMIT_TOO_DEEP`` cuts a loop
across workers as in-process); a subscription becomes a listener of the host's bus that
forwards each matching event to the worker without waiting on it (a slow or dead worker
holds up no event), removed when the worker unsubscribes or ends; a history question
arrives on the worker's second line, which it blocks on, and is answered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from ksi_host._dispatch import continued_chain, emit_chain
from ksi_host._wire import read_message, write_message
from ksi_host.context import PluginContext

__all__ = ["WorkerServices"]


class WorkerServices:
    """The host's side of one running worker's context; see the module docstring."""

    def __init__(
        self, context: PluginContext, writer: asyncio.StreamWriter, queries: asyncio.StreamWriter
    ) -> None:
        self._context: Final = context
        self._writer: Final = writer
        self._queries: Final = queries
        self._listening: dict[int, Callable[[], None]] = {}
        """The worker's subscriptions: each one's undo on the host's bus."""

    async def emit(self, message: dict[str, Any]) -> None:
        """The worker's ``emit``: through the host's pipeline, answered on the channel."""
        try:
            with continued_chain(tuple(message.get("chain") or ())):
                value = await self._context.emit(message["event"], message.get("data") or {})
        except Exception as exc:
            answer = {"op": "error", "id": message["id"], "message": str(exc)}
        else:
            answer = {"op": "result", "id": message["id"], "value": value}
        if not self._writer.is_closing():
            write_message(self._writer, answer)

    def subscribe(self, sub: int, pattern: str) -> None:
        """Forward the host's events matching ``pattern`` to the worker as ``sub``."""
        writer = self._writer

        def forward(event_name: str, data: dict[str, Any]) -> None:
            if not writer.is_closing():
                message = {"op": "event", "sub": sub, "name": event_name, "data": data}
                write_message(writer, {**message, "chain": emit_chain()})

        self._listening[sub] = self._context.event_bus.subscribe(forward, pattern)

    def unsubscribe(self, sub: int) -> None:
        undo = self._listening.pop(sub, None)
        if undo is not None:
            undo()

    async def answer(self, reader: asyncio.StreamReader) -> None:
        """Answer the worker's blocking questions until it is gone; ValueError if it broke them."""
        bus = self._context.event_bus
        while (message := await read_message(reader)) is not None:
            answer: dict[str, Any] = {"op": "result", "id": message.get("id")}
            try:
                if message.get("op") != "history":
                    raise ValueError(f"the host does not answer {message.get('op')!r}")
                answer["value"] = bus.get_event_history(
                    message.get("namespace"), message.get("limit")
                )
            except (ValueError, TypeError) as exc:
                answer = {"op": "error", "id": message.get("id"), "message": str(exc)}
            if self._queries.is_closing():
                return
            write_message(self._queries, answer)

    def close(self) -> None:
        """Close both lines and take the worker's listeners off the host's bus."""
        self._writer.close()
        self._queries.close()
        for undo in self._listening.values():
            undo()
        self._listening.clear()
