"""The guide's async-operation plugin, with ``ksi_daemon`` renamed ``ksi_host``.

Run in process by ``tests/test_guide_events.py`` and in a worker process by
``tests/test_worker.py``; comments mark what was added to make the fragment run.
"""

import asyncio
import uuid

from ksi_host import BasePlugin, PluginMetadata, hookimpl


async def long_running_operation(data):  # Added: the guide leaves it to the reader.
    await asyncio.sleep(0.01)
    return data["n"] * 2


class AsyncPlugin(BasePlugin):
    # Added: metadata.
    def __init__(self):
        super().__init__(metadata=PluginMetadata(name="async_ops"))

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "async:operation":
            # Schedule async work
            task_id = str(uuid.uuid4())
            asyncio.create_task(self._async_operation(task_id, data, context))
            return {"task_id": task_id, "status": "started"}

    async def _async_operation(self, task_id, data, context):
        # Do async work
        result = await long_running_operation(data)

        # Emit completion event
        await context.emit("async:complete", {"task_id": task_id, "result": result})


plugin = AsyncPlugin()  # Added: what a plugin file exposes.
