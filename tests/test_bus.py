"""The event bus: publish through dispatch, listeners by pattern, bounded history."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import pytest

from ksi_host._bus import HISTORY_ITEM_BYTES, EventBus
from ksi_host._lifecycle import Host
from ksi_host.errors import InvalidEventName
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata


class Gate(BasePlugin):
    """Tags events it lets through, blocks ``gate:closed``, answers ``gate:*``."""

    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="gate"), PluginCapabilities(event_namespaces=["gate"]))

    @hookimpl
    def ksi_filter_event(self, event_name, data):
        return None if event_name == "gate:closed" else {**data, "tagged": True}

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"handled": event_name}


def with_host(make_plan, body, *plugins, history_size=1000):
    async def main():
        async with Host(make_plan(*plugins), history_size=history_size) as host:
            return await body(host)

    return asyncio.run(main())


def test_publish_and_emit_go_through_dispatch(make_plan):
    async def body(host):
        return (
            await host.bus.publish("gate:open", {"x": 1}),
            await host.bus.emit("gate:open"),
            await host.bus.publish("gate:closed", {}),
        )

    published, emitted, blocked = with_host(make_plan, body, Gate())
    assert published == emitted == {"handled": "gate:open"}
    assert blocked["error"]["code"] == "BLOCKED"


def test_listeners_match_by_pattern_and_see_filtered_data(make_plan):
    seen: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def listener(key):
        def listen(event_name, data):
            seen.setdefault(key, []).append((event_name, data))

        return listen

    async def body(host):
        for pattern in ("*", "gate", "/other", "gate:o*", "other:ping"):
            host.bus.subscribe(listener(pattern), pattern)
        for name in ("gate:open", "gate:closed", "other:ping", "other:pong"):
            await host.bus.publish(name, {})

    with_host(make_plan, body, Gate())
    assert seen == {
        "*": [("gate:open", {"tagged": True}), ("other:ping", {}), ("other:pong", {})],
        "gate": [("gate:open", {"tagged": True})],
        "/other": [("other:ping", {}), ("other:pong", {})],
        "gate:o*": [("gate:open", {"tagged": True})],
        "other:ping": [("other:ping", {})],
    }


def test_unsubscribe_and_listener_failures(make_plan, caplog):
    calls: list[str] = []

    def broken(event_name, data):
        raise RuntimeError("listener bug")

    async def slow(event_name, data):
        await asyncio.sleep(0)
        calls.append(f"slow {event_name}")

    def quick(event_name, data):
        calls.append(f"quick {event_name}")

    async def body(host):
        host.bus.subscribe(broken)
        undo_slow = host.bus.subscribe(slow)
        host.bus.subscribe(quick, "a")
        host.bus.subscribe(quick, "b")
        await host.bus.publish("a:one", {})
        undo_slow()
        undo_slow()  # a second undo is harmless
        assert host.bus.unsubscribe(quick) is True
        assert host.bus.unsubscribe(quick) is False
        await host.bus.publish("a:two", {})

    with caplog.at_level(logging.ERROR, logger="ksi_host.bus"):
        with_host(make_plan, body)
    assert calls == ["slow a:one", "quick a:one"]
    assert "listener bug" in caplog.text


def test_bad_patterns_and_listeners_are_refused(make_plan):
    async def body(host):
        with pytest.raises(InvalidEventName):
            host.bus.subscribe(print, "Not An Event")
        with pytest.raises(TypeError, match="listener must be callable"):
            host.bus.subscribe("print")

    with_host(make_plan, body)


def test_wait_for_returns_the_matching_event_or_times_out(make_plan):
    async def body(host):
        waiter = asyncio.create_task(
            host.bus.wait_for("job:done", lambda data: data.get("id") == 2, timeout=5)
        )
        await asyncio.sleep(0)
        for job in (1, 2, 3):
            await host.bus.emit("job:done", {"id": job})
        entry = await waiter
        with pytest.raises(asyncio.TimeoutError):
            await host.bus.wait_for("job:never", timeout=0.01)
        return entry

    entry = with_host(make_plan, body)
    assert entry["name"] == "job:done"
    assert entry["data"] == {"id": 2}


def test_history_is_bounded_and_filterable(make_plan):
    async def body(host):
        for i in range(5):
            await host.bus.emit("alpha:tick", {"i": i})
            await host.bus.emit("beta:tock", {"i": i})
        await host.bus.emit("gate:closed", {})  # blocked: not accepted, not in history
        return (
            host.bus.get_event_history(),
            host.bus.get_event_history(namespace="/alpha"),
            host.bus.get_event_history(namespace="beta", limit=2),
            host.bus.get_event_history(limit=0),
        )

    everything, alpha, beta, none = with_host(make_plan, body, Gate(), history_size=6)
    assert [(e["name"], e["data"]["i"]) for e in everything] == [
        ("alpha:tick", 2),
        ("beta:tock", 2),
        ("alpha:tick", 3),
        ("beta:tock", 3),
        ("alpha:tick", 4),
        ("beta:tock", 4),
    ]
    assert all(datetime.fromisoformat(e["timestamp"]).tzinfo for e in everything)
    assert [e["data"]["i"] for e in alpha] == [2, 3, 4]
    assert [e["data"]["i"] for e in beta] == [3, 4]
    assert none == []


def test_history_arguments_are_checked(make_plan):
    async def body(host):
        with pytest.raises(ValueError, match="limit must be 0 or more"):
            host.bus.get_event_history(limit=-1)
        with pytest.raises(InvalidEventName):
            host.bus.get_event_history(namespace="Bad NS")

    with_host(make_plan, body)
    with pytest.raises(ValueError, match="history_size must be 0 or more"):
        Host(make_plan(), history_size=-1)


async def _ignore(event_name, data, context=None):
    return None


def test_history_is_bounded_in_bytes_and_keeps_the_newest():
    bus = EventBus(_ignore, history_size=1000, history_bytes=10_000)
    for i in range(100):
        bus.record("load:tick", "load", {"i": i, "pad": "x" * 500})
    kept = bus.get_event_history()
    assert 0 < bus.history_bytes <= 10_000
    assert 10_000 // 600 <= len(kept) <= 10_000 // 500
    assert [e["data"]["i"] for e in kept] == list(range(100 - len(kept), 100))


@pytest.mark.parametrize(
    "data",
    [
        {"blob": "y" * 200_000, "name": "big"},
        {"rows": [{"n": n, "text": "z" * 100} for n in range(2000)]},
    ],
    ids=["flat", "nested"],
)
def test_an_event_larger_than_an_entry_may_be_is_kept_as_a_summary(data):
    bus = EventBus(_ignore)
    bus.record("load:big", "load", data)
    [entry] = bus.get_event_history()
    size = len(json.dumps(data, separators=(",", ":")))
    assert entry["data"]["truncated"] is True
    assert abs(entry["data"]["bytes"] - size) <= size // 100
    assert entry["data"]["keys"] == sorted(data)
    assert json.dumps(data, separators=(",", ":")).startswith(entry["data"]["preview"])
    assert bus.history_bytes < HISTORY_ITEM_BYTES


def test_a_zero_byte_history_keeps_nothing():
    bus = EventBus(_ignore, history_bytes=0)
    bus.record("load:tick", "load", {})
    assert bus.get_event_history() == []
    with pytest.raises(ValueError, match="history_bytes must be 0 or more"):
        EventBus(_ignore, history_bytes=-1)
