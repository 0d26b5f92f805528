"""Tracing: a line per hook call and dispatch stage, on the ``ksi_host.trace`` logger."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ksi_host._dispatch import Dispatcher
from ksi_host._lifecycle import Host
from ksi_host._trace import TRACE_LOGGER, TraceSettings, TracingDispatcher
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

ON = TraceSettings(enabled=True)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TRACE_LOGGER.name]


def _timeless(line: str) -> str:
    return " ".join(part for part in line.split() if not part.startswith("ms="))


@pytest.fixture
def trace_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=TRACE_LOGGER.name)
    return caplog


class Blocker(BasePlugin):
    """Blocks ``secret:*`` events, lets the others pass."""

    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="blocker"), PluginCapabilities())

    @hookimpl
    def ksi_filter_event(self, event_name: str, data: dict[str, Any]) -> Any:
        return None if event_name.startswith("secret:") else data


class AsyncGreeter(BasePlugin):
    """``greet:hello`` answers after an await; ``greet:fail`` raises after one."""

    def __init__(self) -> None:
        super().__init__(
            PluginMetadata(name="greeter"), PluginCapabilities(event_namespaces=["greet"])
        )

    @hookimpl
    async def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        await asyncio.sleep(0)
        if event_name == "greet:fail":
            raise ValueError("no greeting today")
        return {"hello": data.get("name")}


def test_every_stage_and_hook_call_of_one_event_is_one_line(trace_log, scripted_plugin, make_plan):
    checker = scripted_plugin("checker", namespaces=["calc"], answers={"calc:add": {"sum": 3}})

    async def main() -> Any:
        async with Host(make_plan(checker), trace=ON) as host:
            trace_log.clear()
            answer = await host.dispatch("calc:add", {"a": 1, "b": 2})
            records[:] = [r for r in trace_log.records if r.name == TRACE_LOGGER.name]
            return answer

    records: list[logging.LogRecord] = []
    assert asyncio.run(main()) == {"sum": 3}
    assert [_timeless(r.getMessage()) for r in records] == [
        "event=calc:add cid=- stage=receive",
        "event=calc:add cid=- hook=ksi_filter_event plugin=checker result=passed",
        "event=calc:add cid=- hook=ksi_validate_event plugin=checker result=valid",
        "event=calc:add cid=- hook=ksi_handle_event plugin=checker result=answer",
        "event=calc:add cid=- stage=reply result=answer",
    ]
    handle = records[3]
    assert (handle.plugin, handle.event, handle.hook, handle.result) == (  # type: ignore[attr-defined]
        "checker",
        "calc:add",
        "ksi_handle_event",
        "answer",
    )
    assert handle.duration_ms >= 0  # type: ignore[attr-defined]
    assert all(r.getMessage().split()[-1].startswith("ms=") for r in records[1:])


def test_blocked_none_error_and_async_results_are_named(trace_log, scripted_plugin, make_plan):
    silent = scripted_plugin("silent", namespaces=["greet", "secret"])

    async def main() -> list[Any]:
        async with Host(make_plan(Blocker(), AsyncGreeter(), silent), trace=ON) as host:
            trace_log.clear()
            return [
                await host.dispatch("secret:x", {}),
                await host.dispatch("greet:hello", {"name": "ada"}),
                await host.dispatch("greet:fail", {}),
            ]

    blocked, hello, failed = asyncio.run(main())
    assert blocked["error"]["code"] == "BLOCKED"
    assert hello == {"hello": "ada"}
    assert failed["error"]["code"] == "INTERNAL_ERROR"
    lines = [_timeless(line) for line in _lines(trace_log)]
    assert "event=secret:x cid=- hook=ksi_filter_event plugin=blocker result=blocked" in lines
    assert "event=secret:x cid=- stage=reply result=error BLOCKED" in lines
    assert "event=greet:hello cid=- hook=ksi_handle_event plugin=greeter result=answer" in lines
    assert "event=greet:hello cid=- hook=ksi_handle_event plugin=silent result=None" in lines
    assert (
        "event=greet:fail cid=- hook=ksi_handle_event plugin=greeter result=error "
        "(ValueError: no greeting today)"
    ) in lines
    assert "event=greet:fail cid=- stage=reply result=error INTERNAL_ERROR" in lines


def test_trace_namespace_limits_events_and_leaves_out_lifecycle_hooks(
    trace_log, scripted_plugin, make_plan
):
    plugin = scripted_plugin("both", namespaces=["a", "b"], answers={"a:x": 1, "b:x": 2})

    async def main() -> None:
        settings = TraceSettings.from_env({"KSI_TRACE": "1"}).limited_to(["b"])
        async with Host(make_plan(plugin), trace=settings) as host:
            await host.dispatch("a:x")
            await host.dispatch("b:x")

    asyncio.run(main())
    lines = _lines(trace_log)
    assert lines
    assert all(line.startswith("event=b:x ") for line in lines)


def test_lifecycle_and_metrics_hooks_are_traced_with_their_results(
    trace_log, scripted_plugin, make_plan
):
    broken = scripted_plugin("broken", raises=["ksi_startup"])
    fine = scripted_plugin("fine")

    async def main() -> None:
        async with Host(make_plan(broken, fine), trace=ON) as host:
            await host.metrics()

    asyncio.run(main())
    lines = [_timeless(line) for line in _lines(trace_log)]
    assert lines[:2] == [
        "hook=ksi_plugin_context plugin=broken result=None",
        "hook=ksi_plugin_context plugin=fine result=None",
    ]
    assert (
        "hook=ksi_startup plugin=broken result=error (RuntimeError: broken broke in "
        in " ".join(lines)
    )
    assert "hook=ksi_startup plugin=fine result=answer" in lines
    assert "hook=ksi_metrics_collected plugin=fine result=answer" in lines
    assert lines[-1] == "hook=ksi_shutdown plugin=fine result=answer"


def test_emitted_events_are_traced_inside_the_event_that_emitted_them(
    trace_log, scripted_plugin, make_plan
):
    class Relay(BasePlugin):
        def __init__(self) -> None:
            super().__init__(
                PluginMetadata(name="relay"), PluginCapabilities(commands=["relay:go"])
            )

        @hookimpl
        async def ksi_handle_event(self, event_name: str, data: Any, context: Any) -> Any:
            return {"inner": await context.emit("calc:add", {})}

    calc = scripted_plugin("calc", namespaces=["calc"], answers={"calc:add": 3})

    async def main() -> Any:
        async with Host(make_plan(Relay(), calc), trace=TraceSettings(True, frozenset())) as host:
            trace_log.clear()
            answer = await host.dispatch("relay:go")
            lines[:] = _lines(trace_log)
            return answer

    lines: list[str] = []
    assert asyncio.run(main()) == {"inner": 3}
    stages = [(line.split()[0], line.split()[2]) for line in lines]
    assert stages == [
        ("event=relay:go", "stage=receive"),
        ("event=calc:add", "stage=receive"),
        ("event=calc:add", "hook=ksi_filter_event"),
        ("event=calc:add", "hook=ksi_validate_event"),
        ("event=calc:add", "hook=ksi_handle_event"),
        ("event=calc:add", "stage=reply"),
        ("event=relay:go", "hook=ksi_handle_event"),
        ("event=relay:go", "stage=reply"),
    ]


def test_off_the_host_runs_the_plain_dispatcher_and_logs_nothing(
    trace_log, scripted_plugin, make_plan, monkeypatch
):
    monkeypatch.delenv("KSI_TRACE", raising=False)
    plugin = scripted_plugin("p", namespaces=["a"], answers={"a:x": 1})

    async def main() -> type:
        async with Host(make_plan(plugin)) as host:
            await host.dispatch("a:x")
            return type(host._dispatcher)

    assert asyncio.run(main()) is Dispatcher
    assert _lines(trace_log) == []
    monkeypatch.setenv("KSI_TRACE", "1")
    assert asyncio.run(main()) is TracingDispatcher
    assert _lines(trace_log)


@pytest.mark.parametrize(
    ("value", "enabled", "namespaces"),
    [
        ("", False, set()),
        ("0", False, set()),
        ("off", False, set()),
        ("1", True, set()),
        ("true", True, set()),
        ("all", True, set()),
        ("state", True, {"state"}),
        ("state, system:*", True, {"state", "system"}),
    ],
)
def test_ksi_trace_turns_tracing_on_for_all_or_some_namespaces(value, enabled, namespaces):
    settings = TraceSettings.from_env({"KSI_TRACE": value})
    assert settings.enabled is enabled
    assert settings.namespaces == namespaces
    assert settings.wants("state") is enabled
    assert settings.wants("other") is (enabled and not namespaces)


def test_a_fallback_answer_is_a_trace_line_of_its_own(trace_log, scripted_plugin, make_plan):
    plugin = scripted_plugin("bridge", namespaces=["far"])

    async def forward(event_name: str, data: dict[str, Any], context: Any) -> Any:
        return {"forwarded": event_name}

    async def main() -> Any:
        async with Host(make_plan(plugin), trace=ON) as host:
            host.fall_back("bridge", ["far"], forward)
            trace_log.clear()
            answer = await host.dispatch("far:away")
            lines[:] = [_timeless(line) for line in _lines(trace_log)]
            return answer

    lines: list[str] = []
    assert asyncio.run(main()) == {"forwarded": "far:away"}
    assert lines[-2:] == [
        "event=far:away cid=- stage=fallback plugin=bridge result=answer",
        "event=far:away cid=- stage=reply result=answer",
    ]


@pytest.mark.parametrize(("trace", "traced"), [(True, True), (["calc"], True), (["other"], False)])
def test_plugin_authors_turn_tracing_on_in_the_harness(
    trace_log, scripted_plugin, monkeypatch, trace, traced
):
    from ksi_host.testing import SyncPluginHarness

    monkeypatch.delenv("KSI_TRACE", raising=False)
    plugin = scripted_plugin("calc", namespaces=["calc"], answers={"calc:add": {"sum": 3}})
    with SyncPluginHarness(plugin, trace=trace) as harness:
        trace_log.clear()
        assert harness.send("calc:add") == {"sum": 3}
        lines = [_timeless(line) for line in _lines(trace_log)]
    expected = "event=calc:add cid=- hook=ksi_handle_event plugin=calc result=answer"
    assert (expected in lines) is traced
