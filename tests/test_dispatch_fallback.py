"""The dispatcher's fallback role: unanswered events of a namespace go to one plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from conftest import ScriptedPlugin, plan_of

from ksi_host._dispatch import continued_chain, emit_chain
from ksi_host._lifecycle import Host


class Seen:
    """A fallback that records what it got and answers with it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], Any]] = []

    async def __call__(
        self, event_name: str, data: dict[str, Any], context: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        self.calls.append((event_name, data, context))
        return {"fallback": event_name, "chain": list(emit_chain())}


def run(host: Host, body: Any) -> Any:
    async def main() -> Any:
        async with host:
            return await body(host)

    return asyncio.run(main())


def test_only_events_no_handler_answers_reach_the_fallback():
    local = ScriptedPlugin("local", namespaces=["far"], answers={"far:here": {"ok": 1}})
    seen = Seen()

    async def body(host: Host) -> list[Any]:
        host.fall_back("local", ["far"], seen)
        return [
            await host.dispatch("far:here"),
            await host.dispatch("far:away", {"x": 1}, {"caller": "me"}),
            await host.dispatch("near:away"),
        ]

    here, away, near = run(Host(plan_of(local)), body)
    assert here == {"ok": 1}
    assert away == {"fallback": "far:away", "chain": []}
    assert seen.calls == [("far:away", {"x": 1}, {"caller": "me"})]
    assert near["error"]["code"] == "NO_HANDLER"


def test_a_raising_fallback_is_an_internal_error_naming_its_plugin():
    async def broken(event_name: str, data: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("down")

    async def body(host: Host) -> Any:
        host.fall_back("owner", ["far"], broken)
        return await host.dispatch("far:x")

    reply = run(Host(plan_of(ScriptedPlugin("owner"))), body)
    assert reply["error"]["code"] == "INTERNAL_ERROR"
    assert reply["error"]["plugin"] == "owner"


def test_a_namespace_has_one_fallback_and_a_plugin_can_give_it_back():
    async def body(host: Host) -> list[Any]:
        host.fall_back("one", ["far"], Seen())
        with pytest.raises(ValueError, match="namespace 'far' already go to plugin 'one'"):
            host.fall_back("two", ["far", "near"], Seen())
        host.fall_back("one", (), None)
        host.fall_back("two", ["far"], Seen())
        return [await host.dispatch("far:x")]

    [reply] = run(Host(plan_of(ScriptedPlugin("one"), ScriptedPlugin("two"))), body)
    assert reply == {"fallback": "far:x", "chain": []}


def test_a_plugin_that_stops_gives_its_namespaces_back():
    host = Host(plan_of(ScriptedPlugin("owner")))

    async def main() -> Any:
        await host.start()
        host.fall_back("owner", ["far"], Seen())
        await host.stop()
        return await host.dispatch("far:x")

    assert asyncio.run(main())["error"]["code"] == "NO_HANDLER"


def test_the_emit_chain_carries_on_into_a_continued_dispatch():
    seen = Seen()

    async def body(host: Host) -> Any:
        host.fall_back("owner", ["far"], seen)
        with continued_chain(("a:b", "c:d")):
            inner = await host.bus.emit("far:x")
        return inner, emit_chain()

    inner, after = run(Host(plan_of(ScriptedPlugin("owner"))), body)
    assert inner == {"fallback": "far:x", "chain": ["a:b", "c:d", "far:x"]}
    assert after == ()


def test_a_continued_chain_at_the_limit_refuses_the_next_emit():
    async def body(host: Host) -> Any:
        with continued_chain(("a:b",) * 32):
            return await host.bus.emit("far:x")

    reply = run(Host(plan_of(ScriptedPlugin("owner"))), body)
    assert reply["error"]["code"] == "EMIT_TOO_DEEP"
