"""Run a coroutine eagerly, and continue it as a task only if it has to wait.

A handler that answers without waiting (most do) then costs no task and no extra
loop iteration; asyncio offers this only from Python 3.12 (``eager_start``). The
server uses it for requests, and :func:`ksi_host._deadline.within` for calls into
plugins, so that a deadline cancels the task the call really runs in.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume"]


class _Resumed:
    """Continue, as a task, a coroutine that was started eagerly and had to wait."""

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:
                try:
                    pending = self._coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = self._coro.send(value)
                except StopIteration as done:
                    return done.value


async def resume(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    """The rest of ``coro``, which yielded ``pending`` when it was first sent ``None``."""
    return await _Resumed(coro, pending)
