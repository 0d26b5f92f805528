"""The worker process of an isolated plugin checks its settings as the host would.

The worker finds the plugin's section by the host's rule (``[my-weather]`` is the
section of ``my_weather``), validates it against the plugin's ``config_model`` in the
worker, and a section that does not fit gets the same ``config-invalid`` verdict as
for the same plugin in-process: from the plan, and from the worker itself when the
host's config differs from the plan's.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ksi_host import PluginStatus
from ksi_host._config import HostConfig, HostSection
from ksi_host._lifecycle import Host
from ksi_host._pipeline import build_plan
from ksi_host._plan import LoadPlan
from tests.conftest import error_code, host_env
from tests.containment import Prober, ask, contained_daemon, stop_cleanly

pytestmark = pytest.mark.slow

CONFIGURED = """
import os
from pydantic import BaseModel
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Settings(BaseModel):
    city: str
    limit: int = 3


class Weather(BasePlugin):
    config_model = Settings

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"city": context.settings.city, "limit": context.settings.limit, "pid": os.getpid()}


plugin = Weather(
    PluginMetadata(name="my_weather"), PluginCapabilities(event_namespaces=["weather"])
)
"""

GOOD = {"city": "Oslo", "limit": 5}
BAD = {"city": "Oslo", "limit": "many"}


def _config(section: dict[str, Any], *, isolated: bool) -> HostConfig:
    host = HostSection(isolated=["my-weather"] if isolated else [], watchdog_threshold=0)
    return HostConfig(host=host, **{"my-weather": section})


def _plan(tmp_path: Path, config: HostConfig) -> LoadPlan:
    path = tmp_path / "my_weather.py"  # isolated names match the file (the host never imports it)
    path.write_text(CONFIGURED)
    return build_plan(
        paths=[path],
        env=host_env(tmp_path),
        builtin_package=None,
        sections=config.sections_by_key(),
        host=config.host,
    )


def _run(plan: LoadPlan, config: HostConfig) -> tuple[Any, PluginStatus]:
    async def main() -> tuple[Any, PluginStatus]:
        async with Host(plan, config) as host:
            [status] = host.status()
            return await host.dispatch("weather:get", {}), status

    return asyncio.run(main())


def test_the_worker_reads_the_section_the_host_finds_by_canonical_name(tmp_path):
    config = _config(GOOD, isolated=True)
    answer, status = _run(_plan(tmp_path, config), config)
    assert status.status == "running"
    assert answer["pid"] != os.getpid()  # validated and answered in the worker
    assert {key: answer[key] for key in GOOD} == GOOD


def test_a_bad_section_gets_the_same_verdict_isolated_as_in_process(tmp_path):
    reasons = []
    for isolated in (False, True):
        plan = _plan(tmp_path, _config(BAD, isolated=isolated))
        [excluded] = plan.excluded
        reasons.append(excluded.reason)
    in_process, apart = reasons
    assert apart.code == in_process.code == "config-invalid"
    assert (apart.message, apart.hint, apart.key) == (
        in_process.message,
        in_process.hint,
        in_process.key,
    )
    assert "limit" in apart.message


def test_the_worker_itself_refuses_a_section_the_plan_did_not_check(tmp_path):
    statuses = []
    for isolated in (False, True):
        plan = _plan(tmp_path, _config(GOOD, isolated=isolated))  # vetted with a good section
        answer, status = _run(plan, _config(BAD, isolated=isolated))  # run with a bad one
        assert answer["error"]["code"] == "NO_HANDLER"
        statuses.append(status)
    in_process, apart = statuses
    assert apart.status == in_process.status == "failed"
    assert apart.reason is not None
    assert in_process.reason is not None
    assert apart.reason.code == in_process.reason.code == "config-invalid"
    assert apart.reason.message == in_process.reason.message
    assert apart.reason.key == in_process.reason.key == "limit"


GUIDE = """
import asyncio
import os
import uuid

from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class GuidePlugin(BasePlugin):
    \"\"\"The guide's event-bus examples, run by an isolated plugin in its worker.\"\"\"

    def __init__(self):
        super().__init__(
            metadata=PluginMetadata(name="guide"),
            capabilities=PluginCapabilities(event_namespaces=["guide"]),
        )
        self.ticks = []

    @hookimpl
    def ksi_plugin_context(self, context):
        self._event_bus = context.get("event_bus")
        self._stop_ticks = self._event_bus.subscribe(self.on_tick, "tick")

    def on_tick(self, event_name, data):
        self.ticks.append(data["n"])

    @hookimpl
    async def ksi_handle_event(self, event_name, data, context):
        event_bus = self._event_bus
        action = event_name.partition(":")[2]
        if action == "request":
            results = []
            done = asyncio.Event()

            def process_result(result):
                results.append(result)

            # Send request with correlation ID
            correlation_id = str(uuid.uuid4())

            # Listen for correlated response
            async def response_handler(event_name, data):
                if data.get("correlation_id") == correlation_id:
                    # Handle response
                    process_result(data["result"])
                    done.set()

            event_bus.subscribe(response_handler, "service:response")
            await event_bus.publish("service:request", {
                "action": "process",
                "correlation_id": correlation_id
            })
            await asyncio.wait_for(done.wait(), 5)
            return {"results": results, "unsubscribed": event_bus.unsubscribe(response_handler)}
        if action == "operation":
            started = {}
            completed = asyncio.create_task(event_bus.wait_for(
                "async:complete", lambda data: data["task_id"] == started["task_id"], timeout=5
            ))
            await asyncio.sleep(0)
            started.update(await context.emit("async:operation", {"n": 21}))
            return {"started": started, "complete": (await completed)["data"]}
        if action == "timeout":
            try:
                await event_bus.wait_for("never:sent", timeout=data["seconds"])
            except asyncio.TimeoutError:
                return {"timed_out": True}
        if action == "history":
            # Get recent events
            history = event_bus.get_event_history(namespace="/my_plugin")
            lines = []
            for event in history:
                lines.append(f"{event['timestamp']}: {event['name']} - {event['data']}")
            try:
                event_bus.get_event_history(limit=-1)
            except ValueError as exc:
                return {"lines": lines, "refused": str(exc)}
        if action == "ticks":
            return {"ticks": self.ticks}
        if action == "stop_ticks":
            self._stop_ticks()
            return {"stopped": True}
        if action == "segv":
            os.kill(os.getpid(), 11)
        if action == "recurse":
            return {"inner": await context.emit("guide:recurse", {})}


plugin = GuidePlugin()
"""

FIXTURES = Path(__file__).with_name("fixture_plugins")
SERVICE = (FIXTURES / "guide_service.py").read_text()

ASYNC_OPS = (FIXTURES / "guide_async_ops.py").read_text()


def test_an_isolated_plugin_uses_the_whole_event_bus_as_the_guide_does():
    files = {"guide.py": GUIDE, "service.py": SERVICE, "async_ops.py": ASYNC_OPS}
    host = 'isolated = ["guide"]\nmax_emit_depth = 5\n'
    with contained_daemon({}, host=host, files=files) as daemon:
        daemon.start()
        sock = daemon.socket_path
        with Prober(sock) as prober:
            guide = _listed(sock)["guide"]
            assert guide["status"] == "running", guide
            assert guide["worker"]["pid"] != daemon.proc.pid

            # request/response: subscribe, publish with a correlation id, the answer comes back
            assert ask(sock, "guide:request") == {"results": ["PROCESS"], "unsubscribed": True}

            # wait_for, with a predicate and with its timeout
            operation = ask(sock, "guide:operation")
            assert operation["started"]["status"] == "started"
            assert operation["complete"] == {
                "task_id": operation["started"]["task_id"],
                "result": 42,
            }
            assert ask(sock, "guide:timeout", {"seconds": 0.2}) == {"timed_out": True}

            # get_event_history asks the host
            ask(sock, "my_plugin:started", {"n": 1})
            ask(sock, "other:noise")
            ask(sock, "my_plugin:stopped", {"n": 2})
            history = ask(sock, "guide:history")
            lines = history["lines"]
            assert [line.split(": ", 1)[1] for line in lines] == [
                "my_plugin:started - {'n': 1}",
                "my_plugin:stopped - {'n': 2}",
            ]
            datetime.fromisoformat(lines[0].split(": ", 1)[0])
            assert history["refused"] == "limit must be 0 or more, not -1"

            # emits nest across the worker as in-process: a loop is cut at max_emit_depth
            answer, depth = ask(sock, "guide:recurse"), 0
            while "inner" in answer:
                answer, depth = answer["inner"], depth + 1
            # the client's event and 5 nested emits were handled; the 6th emit is cut off
            assert (depth, error_code(answer)) == (6, "EMIT_TOO_DEEP"), answer

            # a subscription from ksi_plugin_context, and its undo
            ask(sock, "tick:a", {"n": 1})
            ask(sock, "tick:b", {"n": 2})
            assert ask(sock, "guide:ticks") == {"ticks": [1, 2]}
            assert ask(sock, "guide:stop_ticks") == {"stopped": True}
            ask(sock, "tick:c", {"n": 3})
            assert ask(sock, "guide:ticks") == {"ticks": [1, 2]}
        prober.check()
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_a_workers_listeners_leave_the_hosts_bus_with_it(tmp_path):
    path = tmp_path / "guide.py"
    path.write_text(GUIDE)
    config = HostConfig(host=HostSection(isolated=["guide"], watchdog_threshold=0))
    plan = build_plan(paths=[path], env=host_env(tmp_path), builtin_package=None, host=config.host)

    async def main() -> None:
        async with Host(plan, config) as host:
            listeners = host.bus._subscriptions
            assert len(listeners) == 1  # the worker's subscription to "tick"
            await host.dispatch("guide:stop_ticks")
            assert listeners == []
            crashed = await host.dispatch("guide:segv")
            assert crashed["error"]["code"] == "PLUGIN_CRASHED"
            for _ in range(100):
                if "ticks" in await host.dispatch("guide:ticks"):
                    break
                await asyncio.sleep(0.05)
            assert len(listeners) == 1  # the new worker's, and none of the dead one's
            await host.dispatch("guide:segv")
            assert listeners == []

    asyncio.run(main())


def _listed(sock: Path) -> dict[str, Any]:
    return {p["name"]: p for p in ask(sock, "plugin:list")["plugins"]}
