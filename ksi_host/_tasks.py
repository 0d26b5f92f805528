"""Keep the tasks plugins start with ``asyncio.create_task`` alive until they finish.

The guide's async patterns start work with ``asyncio.create_task(...)`` and keep no
reference to the task; asyncio holds only a weak one, so such a task can be garbage
collected mid-flight ("Task was destroyed but it is pending!"). While a host runs,
its loop's task factory keeps a strong reference to every task until it is done, and
the host cancels and awaits whatever is still pending once its plugins have shut down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Generator
from typing import Any, Final

__all__ = ["TaskKeeper"]

logger: Final = logging.getLogger("ksi_host.tasks")

_Factory = Any  # asyncio's TaskFactory type differs between Python versions


class TaskKeeper:
    """A task factory for the host's loop that remembers every task it creates."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: _Factory = None

    def install(self) -> None:
        """Start keeping the tasks created on the running loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._previous = loop.get_task_factory()
        loop.set_task_factory(self._create)

    def _create(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        if self._previous is not None:
            task: asyncio.Future[Any] = self._previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop keeping tasks; cancel and await the ones still pending."""
        if self._loop is not None:
            self._loop.set_task_factory(self._previous)
            self._loop = None
        current = asyncio.current_task()
        leftovers = [task for task in self._tasks if task is not current and not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            logger.info("cancelling %d task(s) still running at shutdown", len(leftovers))
            await asyncio.gather(*leftovers, return_exceptions=True)
        self._tasks.clear()
