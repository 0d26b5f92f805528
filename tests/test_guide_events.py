"""The guide's event examples (event flow, request/response, async operations, configuration,
event history), run through a real ``Host``.

The code inside the plugins and snippets is the guide's, with ``ksi_daemon`` renamed
``ksi_host``; comments mark what was added to make a fragment run.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path

from ksi_host._config import load_config
from ksi_host._lifecycle import Host
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginMetadata
from tests.fixture_plugins.guide_async_ops import AsyncPlugin
from tests.fixture_plugins.guide_service import ServicePlugin


class LoginPlugin(BasePlugin):
    # Added: metadata, and the `validate_user` the guide calls.
    def __init__(self):
        super().__init__(metadata=PluginMetadata(name="login"))

    def validate_user(self, user_id):
        return user_id != "intruder"

    # 1. Plugin receives event
    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "user:login":
            user_id = data["user_id"]

            # 2. Process event
            if self.validate_user(user_id):
                # 3. Emit new events
                asyncio.create_task(
                    context.emit(
                        "user:authenticated", {"user_id": user_id, "timestamp": datetime.now()}
                    )
                )

                # 4. Return response
                return {"status": "logged_in"}


def test_event_flow_handler_emits_a_follow_up_event(make_plan):
    async def main():
        async with Host(make_plan(LoginPlugin())) as host:
            authenticated = asyncio.create_task(host.bus.wait_for("user:authenticated", timeout=5))
            await asyncio.sleep(0)
            reply = await host.dispatch("user:login", {"user_id": "ada"})
            return reply, await authenticated

    reply, event = asyncio.run(main())
    assert reply == {"status": "logged_in"}
    assert event["data"]["user_id"] == "ada"
    assert isinstance(event["data"]["timestamp"], datetime)


def test_request_response_with_correlation_ids(make_plan):
    results = []

    def process_result(result):  # Added: what the guide's handler calls.
        results.append(result)

    async def main():
        async with Host(make_plan(ServicePlugin())) as host:
            event_bus = host.bus  # Added: the guide's `event_bus`.
            done = asyncio.Event()  # Added: to know when the response came.

            # Send request with correlation ID
            correlation_id = str(uuid.uuid4())
            await event_bus.publish(
                "service:request", {"action": "process", "correlation_id": correlation_id}
            )

            # Listen for correlated response
            async def response_handler(event_name, data):
                if data.get("correlation_id") == correlation_id:
                    # Handle response
                    process_result(data["result"])
                    done.set()  # Added.

            event_bus.subscribe(response_handler, "service:response")  # Added: listen.
            await event_bus.publish("service:response", {"correlation_id": "someone-else's"})
            await asyncio.wait_for(done.wait(), 5)

    asyncio.run(main())
    assert results == ["PROCESS"]


def test_async_operation_returns_a_task_id_then_completes(make_plan):
    async def main():
        async with Host(make_plan(AsyncPlugin())) as host:
            started = await host.dispatch("async:operation", {"n": 21})
            complete = await host.bus.wait_for(
                "async:complete", lambda data: data["task_id"] == started["task_id"], timeout=5
            )
            return started, complete

    started, complete = asyncio.run(main())
    assert started["status"] == "started"
    assert complete["data"] == {"task_id": started["task_id"], "result": 42}


class ConfiguredPlugin(BasePlugin):
    # Added: metadata.
    def __init__(self):
        super().__init__(metadata=PluginMetadata(name="my_plugin"))

    @hookimpl
    def ksi_plugin_context(self, context):
        # Get plugin-specific config
        config = context.get("config", {})
        self.my_setting = config.get("my_plugin", {}).get("setting", "default")


def test_configuration_from_the_config_file(tmp_path: Path, make_plan):
    config_file = tmp_path / "config.toml"
    config_file.write_text('[my_plugin]\nsetting = "from the file"\n', encoding="utf-8")
    env = {"KSI_HOME": str(tmp_path), "KSI_CONFIG": str(config_file)}
    configured, default = ConfiguredPlugin(), ConfiguredPlugin()

    async def main():
        async with Host(make_plan(configured), load_config(env=env)):
            pass
        async with Host(make_plan(default), load_config(env={"KSI_HOME": str(tmp_path / "x")})):
            pass

    asyncio.run(main())
    assert configured.my_setting == "from the file"
    assert default.my_setting == "default"


def test_event_history(make_plan, capsys):
    async def main():
        async with Host(make_plan()) as host:
            event_bus = host.bus  # Added: the guide's `event_bus`.
            await host.dispatch("my_plugin:started", {"n": 1})  # Added: some events.
            await host.dispatch("other:noise", {})
            await host.dispatch("my_plugin:stopped", {"n": 2})

            # Get recent events
            history = event_bus.get_event_history(namespace="/my_plugin")
            for event in history:
                print(f"{event['timestamp']}: {event['name']} - {event['data']}")

    asyncio.run(main())
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "my_plugin:started - {'n': 1}",
        "my_plugin:stopped - {'n': 2}",
    ]
    datetime.fromisoformat(lines[0].split(": ", 1)[0])
