"""The watchdog and deadlines in a Host on the main thread: blame, interrupt, TIMEOUT."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from ksi_host._config import HostConfig, HostSection
from ksi_host._deadline import within
from ksi_host._lifecycle import Host
from ksi_host.errors import DeadlineExceeded, PluginStalled
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from tests.conftest import error_code, plan_of


class Stalling(BasePlugin):
    """``stall:sleep`` blocks the loop, ``stall:wait`` awaits forever, ``stall:ok`` answers."""

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name == "stall:sleep":
            time.sleep(30)
        if event_name == "stall:wait":
            return asyncio.Event().wait()
        if event_name == "stall:timeout_error":
            raise TimeoutError("the plugin's own")
        return {"ok": data}


class Filtering(BasePlugin):
    """A catch-all filter that fails on everything."""

    @hookimpl
    def ksi_filter_event(self, event_name: str, data: dict[str, Any]) -> Any:
        raise RuntimeError("broken filter")


def _config(**host: Any) -> HostConfig:
    return HostConfig(host=HostSection(watchdog_threshold=0.1, **host))


def _host(*plugins: BasePlugin, **host: Any) -> Host:
    return Host(plan_of(*plugins), _config(**host))


def _stalling() -> Stalling:
    return Stalling(PluginMetadata(name="staller"), PluginCapabilities(event_namespaces=["stall"]))


async def _ask(host: Host, *events: str) -> list[Any]:
    async with host:
        return [await host.dispatch(event, {"n": 1}) for event in events]


def test_a_blocking_handler_is_interrupted_at_its_deadline_and_blamed(caplog):
    host = _host(_stalling(), call_timeouts={"staller": 0.3})
    with caplog.at_level(logging.WARNING):
        stalled, after = asyncio.run(_ask(host, "stall:sleep", "stall:ok"))
    assert error_code(stalled) == "TIMEOUT"
    assert stalled["error"]["plugin"] == "staller"
    assert "blocked the event loop" in stalled["error"]["message"]
    assert after == {"ok": {"n": 1}}
    assert "plugin 'staller' in ksi_handle_event on 'stall:sleep'" in caplog.text
    assert "time.sleep(30)" in caplog.text
    assert {s.name: s.stalls for s in host.status()}["staller"] == 1


def test_a_stall_shows_in_the_statuses_the_host_kept_from_before_it():
    async def statuses_around_a_stall(host: Host) -> list[dict[str, int]]:
        async with host:
            before = {s.name: s.stalls for s in host.status()}
            await host.dispatch("stall:sleep", {"n": 1})
            return [before, {s.name: s.stalls for s in host.status()}]

    host = _host(_stalling(), call_timeouts={"staller": 0.3})
    before, after = asyncio.run(statuses_around_a_stall(host))
    assert (before["staller"], after["staller"]) == (0, 1)


def test_an_awaiting_handler_is_cancelled_at_its_deadline():
    host = _host(_stalling(), call_timeout=0.2)
    waited, own = asyncio.run(_ask(host, "stall:wait", "stall:timeout_error"))
    assert error_code(waited) == "TIMEOUT"
    assert "did not answer 'stall:wait' within its 0.2 s deadline" in waited["error"]["message"]
    assert error_code(own) == "INTERNAL_ERROR"  # its own TimeoutError is a failure, not ours


def test_diagnostic_events_pass_a_failing_catch_all_filter(scripted_plugin):
    health = scripted_plugin("health", answers={"system:health": {"status": "healthy"}})
    host = _host(Filtering(PluginMetadata(name="filtering")), health)
    answer, other = asyncio.run(_ask(host, "system:health", "health:other"))
    assert answer == {"status": "healthy"}
    assert error_code(other) == "INTERNAL_ERROR"


def test_within_tells_its_deadline_from_the_awaited_codes_own_timeout():
    async def own() -> None:
        raise TimeoutError("mine")

    with pytest.raises(DeadlineExceeded):
        asyncio.run(within(asyncio.sleep(5), 0.01))
    with pytest.raises(TimeoutError, match="mine"):
        asyncio.run(within(own(), 5))


def test_plugin_stalled_is_not_an_exception_and_pickles():
    import pickle

    stalled = PluginStalled("p", "ksi_startup", 1.5, 1.0)
    assert not isinstance(stalled, Exception)
    assert str(pickle.loads(pickle.dumps(stalled))) == str(stalled)


def test_a_loop_that_is_not_running_is_not_blocked(caplog):
    """The thread running something else between two runs of the loop is not a stall."""
    from ksi_host._watchdog import Watchdog

    loop = asyncio.new_event_loop()
    watchdog = Watchdog(0.05, lambda plugin, hook: 0.1)

    async def start() -> None:
        watchdog.start()

    try:
        loop.run_until_complete(start())
        time.sleep(0.5)  # the loop stopped, ten thresholds: no beat, and no stall either
        loop.run_until_complete(asyncio.sleep(0.05))
        assert not watchdog.stalls
        assert "blocked" not in caplog.text
    finally:
        watchdog.stop()
        loop.close()


def test_a_watchdog_left_running_ends_with_its_loop():
    """A host that was never stopped must not watch, or interrupt, what the thread runs next."""
    from ksi_host._watchdog import Watchdog

    before = set(threading.enumerate())

    async def start() -> Watchdog:
        watchdog = Watchdog(0.05, lambda plugin, hook: 0.1)
        watchdog.start()
        return watchdog

    watchdog = asyncio.run(start())  # closes the loop; nobody calls stop()
    try:
        [thread] = [t for t in threading.enumerate() if t not in before]
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert not watchdog.stalls
    finally:
        watchdog.stop()
