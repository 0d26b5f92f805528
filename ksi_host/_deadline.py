"""Deadlines of calls into plugins: how an awaiting call and a blocking call are cut short.

A call that awaits is cancelled at its deadline (:func:`within` raises
:class:`~ksi_host.errors.DeadlineExceeded`). A call that blocks the event loop
(``time.sleep``, a busy loop) cannot be cancelled: the watchdog
(:mod:`ksi_host._watchdog`) raises :class:`~ksi_host.errors.PluginStalled` inside it
instead. Both become the ``TIMEOUT`` reply naming the plugin.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine
from types import CoroutineType
from typing import Any, Final, TypeVar

from ksi_host._crash_record import RECORD, line
from ksi_host._serving import resume
from ksi_host.errors import DeadlineExceeded

__all__ = ["attributed", "within"]

_T = TypeVar("_T")
_CANCEL_GRACE: Final = 1.0
"""Seconds a cancelled call may take to unwind before its TIMEOUT is answered anyway."""


async def within(
    awaitable: Awaitable[_T], seconds: float, blame: tuple[str, str, str | None] | None = None
) -> _T:
    """Await ``awaitable``, cancelling it after ``seconds``; a plugin's own TimeoutError passes.

    A coroutine is run eagerly: one that answers without waiting costs nothing more.
    One that waits goes on in a task of its own (:func:`~ksi_host._serving.resume`), and
    that task is what the deadline cancels: never the caller's task, which may be a
    connection's (the server also runs requests eagerly). ``blame`` (plugin, hook,
    event) stays on that task's stack for the watchdog.
    """
    if type(awaitable) is CoroutineType:
        context = contextvars.copy_context()  # its own, as a task's
        try:
            pending = context.run(awaitable.send, None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        task: asyncio.Future[_T] = asyncio.ensure_future(
            attributed(awaitable, pending, context, blame)
        )
    else:
        task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait((task,), timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=_CANCEL_GRACE)
        raise DeadlineExceeded(seconds=seconds)
    return task.result()


async def attributed(
    coro: Coroutine[Any, Any, Any],
    pending: Any,
    context: contextvars.Context,
    blame: tuple[str, str, str | None] | None,
) -> Any:
    """:func:`~ksi_host._serving.resume`, with who runs in ``blame`` for the watchdog to read.

    Each step is in the crash record too (:mod:`ksi_host._crash_record`).
    """
    named = line(*blame) if blame is not None and RECORD.ids is not None else None
    return await resume(coro, pending, context, named)
