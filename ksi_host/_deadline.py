"""Deadlines of calls into plugins: how an awaiting call and a blocking call are cut short.

A call that awaits is cancelled at its deadline (:func:`within` raises
:class:`DeadlineExceeded`). A call that blocks the event loop (``time.sleep``, a busy
loop) cannot be cancelled: the watchdog (:mod:`ksi_host._watchdog`) raises
:class:`PluginStalled` inside it instead. Both become the ``TIMEOUT`` reply naming
the plugin.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["DeadlineExceeded", "PluginStalled", "within"]

_T = TypeVar("_T")


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


if sys.version_info >= (3, 11):

    async def within(awaitable: Awaitable[_T], seconds: float) -> _T:
        """Await ``awaitable``, cancelling it after ``seconds``; a plugin's TimeoutError passes."""
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await awaitable
        except TimeoutError:
            if deadline.expired():
                raise DeadlineExceeded(seconds) from None
            raise

else:  # pragma: no cover - Python 3.10

    async def within(awaitable: Awaitable[_T], seconds: float) -> _T:
        """Await ``awaitable``, cancelling it after ``seconds``."""
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(seconds) from None
