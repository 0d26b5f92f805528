"""Deadlines of calls into plugins: how an awaiting call and a blocking call are cut short.

A call that awaits is cancelled at its deadline (:func:`within` raises
:class:`DeadlineExceeded`). A call that blocks the event loop (``time.sleep``, a busy
loop) cannot be cancelled: the watchdog (:mod:`ksi_host._watchdog`) raises
:class:`PluginStalled` inside it instead. Both become the ``TIMEOUT`` reply naming
the plugin.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine
from types import CoroutineType
from typing import Any, Final, TypeVar

from ksi_host._serving import resume

__all__ = ["DeadlineExceeded", "PluginStalled", "attributed", "within"]

_T = TypeVar("_T")
_CANCEL_GRACE: Final = 1.0
"""Seconds a cancelled call may take to unwind before its TIMEOUT is answered anyway."""


class DeadlineExceeded(Exception):
    """A call into a plugin awaited past its deadline and was cancelled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"did not finish within {seconds:g} s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds,))


class PluginStalled(BaseException):
    """Raised inside plugin code that blocked the event loop past its call's deadline.

    A ``BaseException``, like ``KeyboardInterrupt``, so a plugin's ``except Exception``
    does not swallow it.
    """

    def __init__(self, plugin: str, hook: str, seconds: float, deadline: float) -> None:
        self.plugin = plugin
        self.hook = hook
        self.seconds = seconds
        self.deadline = deadline
        super().__init__(
            f"plugin {plugin!r} blocked the event loop in {hook} for {seconds:.1f} s, "
            f"past its {deadline:g} s deadline; interrupted"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.plugin, self.hook, self.seconds, self.deadline))


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
        raise DeadlineExceeded(seconds)
    return task.result()


async def attributed(
    coro: Coroutine[Any, Any, Any],
    pending: Any,
    context: contextvars.Context,
    blame: tuple[str, str, str | None] | None,
) -> Any:
    """:func:`~ksi_host._serving.resume`, with who runs in ``blame`` for the watchdog to read."""
    return await resume(coro, pending, context)
