"""The guide's fire-and-forget ``asyncio.create_task`` survives garbage collection."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from typing import Any

from ksi_host._lifecycle import Host
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata


def _finish(ref: weakref.ref[asyncio.Future[int]], value: int) -> None:
    waiter = ref()
    if waiter is not None:
        waiter.set_result(value)


class AsyncOperations(BasePlugin):
    """The guide's "Async Operations" example, with work only a fresh future can finish."""

    def __init__(self) -> None:
        super().__init__(
            PluginMetadata(name="async_ops"),
            PluginCapabilities(event_namespaces=["async"]),
        )
        self.cancelled = 0
        self.release: asyncio.Event | None = None

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "async:operation":
            # Schedule async work
            task_id = str(uuid.uuid4())
            asyncio.create_task(self._async_operation(task_id, data, context))  # noqa: RUF006
            return {"task_id": task_id, "status": "started"}
        if event_name == "async:forever":
            asyncio.create_task(self._forever())  # noqa: RUF006
            return {"status": "started"}
        return None

    async def _async_operation(self, task_id: str, data: dict[str, Any], context: Any) -> None:
        # Whoever finishes the work holds only a weak reference (as weak-keyed registries
        # do), so nothing but the task refers to it: asyncio alone lets it be collected.
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, _finish, weakref.ref(waiter), data["value"] * 2)
        result = await waiter
        await context.emit("async:complete", {"task_id": task_id, "result": result})

    async def _forever(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def test_a_task_with_no_reference_finishes_and_emits_its_completion(make_plan):
    plugin = AsyncOperations()

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with Host(make_plan(plugin)) as host:
            completion = asyncio.ensure_future(host.bus.wait_for("async:complete", timeout=2))
            await asyncio.sleep(0)
            started = await host.dispatch("async:operation", {"value": 21})
            for _ in range(5):
                gc.collect()
                await asyncio.sleep(0.02)
            return started, await completion

    started, completed = asyncio.run(main())
    assert started["status"] == "started"
    assert completed["data"] == {"task_id": started["task_id"], "result": 42}


def test_stop_cancels_tasks_the_plugins_left_running(make_plan, recwarn):
    plugin = AsyncOperations()

    async def main() -> int:
        host = Host(make_plan(plugin))
        await host.start()
        await host.dispatch("async:forever", {})
        await asyncio.sleep(0)
        await host.stop()
        return len(asyncio.all_tasks())

    assert asyncio.run(main()) == 1
    assert plugin.cancelled == 1
    assert not [w for w in recwarn if "destroyed" in str(w.message)]
