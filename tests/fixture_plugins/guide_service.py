"""Added to the guide: the service its request/response example sends ``service:request`` to.

It answers from a task, with the request's correlation id, after a response for
someone else that the requester must ignore. Run in process by
``tests/test_guide_events.py`` and in a worker process by ``tests/test_worker.py``.
"""

import asyncio

from ksi_host import BasePlugin, PluginMetadata, hookimpl


class ServicePlugin(BasePlugin):
    def __init__(self):
        super().__init__(metadata=PluginMetadata(name="service"))

    @hookimpl
    def ksi_plugin_context(self, context):
        self._event_bus = context.get("event_bus")

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "service:request":
            response = {"correlation_id": data["correlation_id"], "result": data["action"].upper()}
            decoy = {"correlation_id": "someone-else's", "result": "NOT YOURS"}
            asyncio.create_task(self._event_bus.publish("service:response", decoy))
            asyncio.create_task(self._event_bus.publish("service:response", response))
            return {"status": "accepted"}


plugin = ServicePlugin()
