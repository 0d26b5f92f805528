"""Run a coroutine eagerly, and continue it as a task only if it has to wait.

A handler that answers without waiting (most do) then costs no task and no extra
loop iteration; asyncio offers this only from Python 3.12 (``eager_start``). The
server uses it for requests, and :func:`ksi_host._deadline.within` for calls into
plugins, so that a deadline cancels the task the call really runs in.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume"]


class _Resumed:
    """Continue, as a task, a coroutine that was started eagerly and had to wait.

    With a ``context``, every step runs in it: the one the eager start ran in, so a
    context variable set before the first wait is still set (and resettable) after it,
    and never leaks into the caller's other work.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        pending: Any,
        context: contextvars.Context | None,
    ) -> None:
        self._coro = coro
        self._pending = pending
        self._context = context

    def _step(self, method: Any, arg: Any) -> Any:
        return method(arg) if self._context is None else self._context.run(method, arg)

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:
                try:
                    pending = self._step(self._coro.throw, exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = self._step(self._coro.send, value)
                except StopIteration as done:
                    return done.value


async def resume(
    coro: Coroutine[Any, Any, Any], pending: Any, context: contextvars.Context | None = None
) -> Any:
    """The rest of ``coro``, which yielded ``pending`` when it was first sent ``None``."""
    return await _Resumed(coro, pending, context)
