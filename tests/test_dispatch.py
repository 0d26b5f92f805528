"""The event pipeline: filter -> validate -> handle, routing, error shapes, isolation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import event_names, not_event_names

from ksi_host._config import HostConfig
from ksi_host._dispatch import Dispatcher
from ksi_host._lifecycle import Host
from ksi_host.errors import InvalidEventName
from ksi_host.events import split_event_name
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata


def dispatch_all(plan, *events: tuple[str, Any]) -> list[Any]:
    """Start a host on ``plan``, dispatch each (name, data), stop; return the answers."""

    async def main() -> list[Any]:
        async with Host(plan) as host:
            return [await host.dispatch(name, data) for name, data in events]

    return asyncio.run(main())


def caps(*namespaces: str, commands: tuple[str, ...] = ()) -> PluginCapabilities:
    return PluginCapabilities(event_namespaces=list(namespaces), commands=list(commands))


class Stamp(BasePlugin):
    """A filter that appends its name to data["trail"], tryfirst or not."""

    def __init__(self, name: str) -> None:
        super().__init__(PluginMetadata(name=name))

    @hookimpl
    def ksi_filter_event(self, event_name, data):
        return {**data, "trail": [*data.get("trail", []), self.name]}


class EarlyStamp(Stamp):
    @hookimpl(tryfirst=True)
    def ksi_filter_event(self, event_name, data):
        return {**data, "trail": [*data.get("trail", []), self.name]}


class LateStamp(Stamp):
    @hookimpl(trylast=True)
    def ksi_filter_event(self, event_name, data):
        return {**data, "trail": [*data.get("trail", []), self.name]}


class Echo(BasePlugin):
    """Answers every event of its namespace with the data it saw."""

    def __init__(self, name: str = "echo", namespace: str = "echo") -> None:
        super().__init__(PluginMetadata(name=name), caps(namespace))

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"by": self.name, "event": event_name, "data": data}


class Blocker(BasePlugin):
    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="blocker"))

    @hookimpl
    def ksi_filter_event(self, event_name, data):
        return None if data.get("secret") else data


class Rejecter(BasePlugin):
    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="rejecter"))

    @hookimpl
    def ksi_validate_event(self, event_name, data):
        if "required_field" not in data:
            raise ValueError("Missing required field")


class AsyncEverything(BasePlugin):
    """Coroutine filter, validator and handler: each must be awaited."""

    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="async_everything"), caps("slow"))

    @hookimpl
    async def ksi_filter_event(self, event_name, data):
        await asyncio.sleep(0)
        return {**data, "filtered": True}

    @hookimpl
    async def ksi_validate_event(self, event_name, data):
        await asyncio.sleep(0)
        if data.get("bad"):
            raise ValueError("async validator says no")

    @hookimpl
    async def ksi_handle_event(self, event_name, data, context):
        await asyncio.sleep(0)
        return {"awaited": True, "filtered": data["filtered"]}


class Broken(BasePlugin):
    """Raises in every event hook when asked to, with an internal detail that must not leak."""

    def __init__(self, name: str = "broken", *, where: str = "handle") -> None:
        super().__init__(PluginMetadata(name=name), caps("echo"))
        self.where = where

    @hookimpl
    def ksi_filter_event(self, event_name, data):
        if self.where == "filter":
            raise KeyError("password=hunter2")
        return data

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if self.where == "handle":
            raise KeyError("password=hunter2")


class FewerArgs(BasePlugin):
    """A hook may take fewer arguments than its spec."""

    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="fewer"), caps("few"))

    @hookimpl
    def ksi_handle_event(self, data, event_name):
        return {"event": event_name, "keys": sorted(data)}


class ContextReader(BasePlugin):
    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="context_reader"), caps("ctx"))

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {
            "has_emit": callable(context.emit),
            "bus": context.get("event_bus") is not None,
            "client": context.get("client"),
            "host": type(context["host"]).__name__,
        }


def test_one_answer_is_returned_as_is(make_plan):
    [reply] = dispatch_all(make_plan(Echo()), ("echo:hi", {"x": 1}))
    assert reply == {"by": "echo", "event": "echo:hi", "data": {"x": 1}}


def test_several_answers_come_back_together_in_call_order(make_plan):
    [reply] = dispatch_all(make_plan(Echo("a"), Echo("b")), ("echo:hi", {}))
    assert reply == {
        "status": "multiple",
        "results": [
            {"plugin": "b", "result": {"by": "b", "event": "echo:hi", "data": {}}},
            {"plugin": "a", "result": {"by": "a", "event": "echo:hi", "data": {}}},
        ],
    }


def test_no_handler(make_plan):
    [reply] = dispatch_all(make_plan(Echo()), ("other:thing", {}))
    assert reply == {
        "status": "error",
        "error": {"code": "NO_HANDLER", "message": "no plugin handles 'other:thing'"},
    }


def test_missing_data_is_an_empty_object_and_non_objects_are_rejected(make_plan):
    none_reply, list_reply = dispatch_all(make_plan(Echo()), ("echo:a", None), ("echo:a", [1]))
    assert none_reply["data"] == {}
    assert list_reply["error"] == {
        "code": "INVALID_INPUT",
        "message": "event data must be an object, not list",
    }


def test_filters_run_in_hook_order_each_seeing_the_previous_output(make_plan):
    plan = make_plan(
        LateStamp("late"), Stamp("first"), Stamp("second"), EarlyStamp("early"), Echo()
    )
    [reply] = dispatch_all(plan, ("echo:go", {"trail": ["sender"]}))
    assert reply["data"]["trail"] == ["sender", "early", "second", "first", "late"]


def test_a_filter_returning_none_blocks_and_the_reply_names_it(make_plan):
    plan = make_plan(Blocker(), Echo())
    blocked, passed = dispatch_all(plan, ("echo:a", {"secret": 1}), ("echo:a", {}))
    assert blocked == {
        "status": "error",
        "error": {
            "code": "BLOCKED",
            "message": "event 'echo:a' was blocked by plugin 'blocker'",
            "plugin": "blocker",
        },
    }
    assert passed["by"] == "echo"


def test_a_validator_rejects_with_its_own_message(make_plan):
    plan = make_plan(Rejecter(), Echo())
    rejected, accepted = dispatch_all(plan, ("echo:a", {}), ("echo:a", {"required_field": 1}))
    assert rejected["error"] == {
        "code": "INVALID_INPUT",
        "message": "Missing required field",
        "plugin": "rejecter",
    }
    assert accepted["by"] == "echo"


def test_coroutine_filters_validators_and_handlers_are_awaited(make_plan):
    good, bad = dispatch_all(
        make_plan(AsyncEverything()), ("slow:op", {}), ("slow:op", {"bad": True})
    )
    assert good == {"awaited": True, "filtered": True}
    assert bad["error"]["message"] == "async validator says no"


def test_a_raising_handler_costs_only_its_answer(make_plan, caplog):
    with caplog.at_level(logging.ERROR, logger="ksi_host.dispatch"):
        alone, again = dispatch_all(make_plan(Broken()), ("echo:x", {}), ("echo:x", {}))
    assert alone == {
        "status": "error",
        "error": {
            "code": "INTERNAL_ERROR",
            "message": "plugin 'broken' failed while handling 'echo:x'; see the host's log",
            "plugin": "broken",
        },
    }
    assert again == alone
    assert "hunter2" not in str(alone)
    assert "KeyError: 'password=hunter2'" in caplog.text  # the traceback is in the log
    [reply] = dispatch_all(make_plan(Echo(), Broken()), ("echo:x", {}))
    assert reply["status"] == "multiple"
    assert reply["results"][0]["plugin"] == "broken"
    assert reply["results"][0]["error"]["code"] == "INTERNAL_ERROR"
    assert reply["results"][1] == {
        "plugin": "echo",
        "result": {"by": "echo", "event": "echo:x", "data": {}},
    }


def test_a_raising_filter_fails_closed(make_plan):
    [reply] = dispatch_all(make_plan(Echo(), Broken(where="filter")), ("echo:x", {}))
    assert reply["error"]["code"] == "INTERNAL_ERROR"
    assert reply["error"]["plugin"] == "broken"
    assert "hunter2" not in str(reply)


def test_a_filter_returning_a_non_dict_is_the_filters_fault(make_plan):
    class Sloppy(BasePlugin):
        @hookimpl
        def ksi_filter_event(self, event_name, data):
            return True

    [reply] = dispatch_all(make_plan(Sloppy(PluginMetadata(name="sloppy")), Echo()), ("echo:x", {}))
    assert reply["error"]["code"] == "INTERNAL_ERROR"
    assert "returned bool, not the event data" in reply["error"]["message"]


def test_hooks_may_take_fewer_arguments(make_plan):
    [reply] = dispatch_all(make_plan(FewerArgs()), ("few:args", {"b": 1, "a": 2}))
    assert reply == {"event": "few:args", "keys": ["a", "b"]}


def test_handlers_get_a_context_with_emit_and_the_callers_entries(make_plan):
    async def main() -> tuple[Any, Any]:
        async with Host(make_plan(ContextReader())) as host:
            plain = await host.dispatch("ctx:read", {})
            caller = {"client": "conn-1", "host": "spoofed"}
            with_client = await host.dispatch("ctx:read", {}, caller)
            return plain, with_client

    plain, with_client = asyncio.run(main())
    assert plain == {"has_emit": True, "bus": True, "client": None, "host": "HostView"}
    assert with_client == {"has_emit": True, "bus": True, "client": "conn-1", "host": "HostView"}


def test_routing_calls_only_plugins_that_declared_the_event(make_plan, scripted_plugin):
    log: list[tuple[str, str]] = []
    by_namespace = scripted_plugin("ns", namespaces=["/alpha"], log=log)
    by_command = scripted_plugin("cmd", commands=["beta:go"], log=log)
    everything = scripted_plugin("all", log=log)

    async def main() -> None:
        async with Host(make_plan(by_namespace, by_command, everything)) as host:
            log.clear()
            for name in ("alpha:x", "beta:go", "beta:stop", "gamma:x"):
                await host.dispatch(name, {})
                log.append(("--", name))

    asyncio.run(main())
    seen: dict[str, set[str]] = {}
    current: set[str] = set()
    for plugin, hook in log:
        if plugin == "--":
            seen[hook], current = current, set()
        elif hook == "ksi_handle_event":
            current.add(plugin)
    assert seen == {
        "alpha:x": {"ns", "all"},
        "beta:go": {"cmd", "all"},
        "beta:stop": {"all"},
        "gamma:x": {"all"},
    }


def test_routes_cached_during_startup_forget_a_plugin_that_then_fails(make_plan, scripted_plugin):
    class Early(BasePlugin):
        @hookimpl
        def ksi_plugin_context(self, context):
            self.context = context

        @hookimpl
        async def ksi_startup(self):
            self.reply = await self.context.emit("x:y", {})

    early = Early(PluginMetadata(name="early"))
    late = scripted_plugin("late", raises=["ksi_startup"], answers={"x:y": "late"})
    [after] = dispatch_all(make_plan(early, late), ("x:y", {}))
    assert early.reply == "late"  # routed while "late" was registered
    assert after["error"]["code"] == "NO_HANDLER"  # and no longer once it failed


@given(name=st.one_of(event_names, not_event_names))
@settings(max_examples=200, deadline=None)
def test_invalid_event_names_are_rejected_and_valid_ones_routed(make_plan, name):
    async def main() -> Any:
        async with Host(make_plan()) as host:
            return await host.dispatch(name, {})

    reply = asyncio.run(main())
    try:
        split_event_name(name)
    except InvalidEventName as exc:
        problem: str | None = exc.what
    else:
        problem = None
    if problem is None:
        assert reply["error"]["code"] == "NO_HANDLER"
    else:
        assert reply["error"]["code"] == "INVALID_EVENT_NAME"
        assert problem in reply["error"]["message"]


# --- routing against broadcasting ---

NAMESPACES = ("alpha", "beta", "gamma")
EVENTS = tuple(f"{ns}:{action}" for ns in NAMESPACES for action in ("one", "two"))


class Honest(BasePlugin):
    """Filters, validates and handles only the events it declared (all, if it declared none)."""

    def __init__(self, name: str, namespaces: list[str], commands: list[str], tryfirst: bool):
        super().__init__(PluginMetadata(name=name), caps(*namespaces, commands=tuple(commands)))
        self.tryfirst = tryfirst

    def _mine(self, event_name: str) -> bool:
        c = self.capabilities
        return (
            c.routes_everything
            or event_name.partition(":")[0] in c.event_namespaces
            or event_name in c.commands
        )

    @hookimpl
    def ksi_filter_event(self, event_name, data):
        if not self._mine(event_name):
            return data
        if data.get("block") == self.name:
            return None
        return {**data, "trail": [*data.get("trail", []), self.name]}

    @hookimpl
    def ksi_validate_event(self, event_name, data):
        if self._mine(event_name) and data.get("reject") == self.name:
            raise ValueError(f"{self.name} rejects")

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if not self._mine(event_name):
            return None
        if data.get("crash") == self.name:
            raise RuntimeError("crash")
        if data.get("quiet") == self.name:
            return None
        return {"by": self.name, "trail": data.get("trail", [])}


@st.composite
def honest_plugins(draw: st.DrawFn) -> list[Honest]:
    count = draw(st.integers(min_value=0, max_value=6))
    return [
        Honest(
            f"p{i}",
            draw(st.lists(st.sampled_from(NAMESPACES), max_size=2, unique=True)),
            draw(st.lists(st.sampled_from(EVENTS), max_size=2, unique=True)),
            draw(st.booleans()),
        )
        for i in range(count)
    ]


@given(
    plugins=honest_plugins(),
    events=st.lists(
        st.tuples(
            st.sampled_from(EVENTS),
            st.fixed_dictionaries(
                {},
                optional={
                    key: st.sampled_from([f"p{i}" for i in range(6)])
                    for key in ("block", "reject", "crash", "quiet")
                },
            ),
        ),
        min_size=1,
        max_size=6,
    ),
)
@settings(max_examples=150, deadline=None)
def test_routing_gives_the_same_results_as_broadcasting(make_plan, plugins, events):
    async def main() -> tuple[list[Any], list[Any]]:
        async with Host(make_plan(*plugins)) as host:
            broadcast = Dispatcher(host.manager.pm, host.context_for, host.bus, routing=False)
            routed = [await host.dispatch(name, dict(data)) for name, data in events]
            everyone = [await broadcast.dispatch(name, dict(data)) for name, data in events]
            return routed, everyone

    routed, everyone = asyncio.run(main())
    assert routed == everyone


# --- emits nested in handlers ---


class PingPong(BasePlugin):
    """Answers ``ping:*`` by emitting ``pong:*`` and back: an endless loop between two plugins."""

    def __init__(self, name: str, listens: str, answers: str, *, fire_and_forget: bool) -> None:
        super().__init__(PluginMetadata(name=name), caps(listens))
        self.answers = answers
        self.fire_and_forget = fire_and_forget
        self.calls = 0

    @hookimpl
    async def ksi_handle_event(self, event_name, data, context):
        self.calls += 1
        follow_up = context.emit(f"{self.answers}:ball", {"hits": data.get("hits", 0) + 1})
        if self.fire_and_forget:
            asyncio.create_task(follow_up)  # noqa: RUF006 - the guide's event-flow pattern
            return {"status": "sent"}
        return await follow_up


def ping_pong(*, fire_and_forget: bool) -> tuple[PingPong, PingPong]:
    return (
        PingPong("ping", "ping", "pong", fire_and_forget=fire_and_forget),
        PingPong("pong", "pong", "ping", fire_and_forget=fire_and_forget),
    )


def test_emits_looping_between_plugins_stop_at_max_emit_depth(make_plan):
    ping, pong = ping_pong(fire_and_forget=False)
    config = HostConfig(host={"max_emit_depth": 5})

    async def main() -> tuple[Any, Any]:
        async with Host(make_plan(ping, pong), config) as host:
            return await host.dispatch("ping:ball", {}), await host.metrics()

    reply, metrics = asyncio.run(main())
    assert reply["error"]["code"] == "EMIT_TOO_DEEP"
    assert reply["error"]["message"] == (
        "event 'ping:ball' was emitted inside 5 nested emitted events, the limit "
        "(latest: pong:ball -> ping:ball -> pong:ball -> ping:ball -> pong:ball); plugins that "
        "emit to each other in a loop never end: break the loop, or raise [host] max_emit_depth "
        "if the nesting is meant"
    )
    assert (ping.calls, pong.calls) == (3, 3)  # the dispatch, then 5 emits
    assert metrics["ksi_host"]["errors"] == {"EMIT_TOO_DEEP": 1}


def test_fire_and_forget_emit_loops_stop_too(make_plan):
    ping, pong = ping_pong(fire_and_forget=True)

    async def main() -> Any:
        async with Host(make_plan(ping, pong), HostConfig(host={"max_emit_depth": 8})) as host:
            done = asyncio.create_task(host.bus.wait_for("ping:ball", lambda d: d["hits"] == 8))
            await asyncio.sleep(0)
            first = await host.dispatch("ping:ball", {})
            await asyncio.wait_for(done, 5)
            for _ in range(20):  # let the last task find the limit
                await asyncio.sleep(0)
            return first

    assert asyncio.run(main()) == {"status": "sent"}
    assert ping.calls + pong.calls == 9  # the dispatch and 8 emitted events, then no more


def test_emit_depth_counts_nesting_not_events(make_plan):
    """Many emits one after another, at the same depth, are all fine."""

    class Chatty(BasePlugin):
        @hookimpl
        async def ksi_handle_event(self, event_name, data, context):
            if event_name == "chat:start":
                return [await context.emit("chat:line", {"n": n}) for n in range(10)]
            return data["n"]

    config = HostConfig(host={"max_emit_depth": 1})
    [reply] = dispatch_all(make_plan(Chatty(PluginMetadata(name="chatty"))), ("chat:start", {}))
    assert reply == list(range(10))

    async def main() -> Any:
        async with Host(make_plan(Chatty(PluginMetadata(name="chatty"))), config) as host:
            return await host.dispatch("chat:start", {})

    assert asyncio.run(main()) == list(range(10))


def test_the_routes_follow_plugins_registered_and_unregistered_on_a_running_host(
    make_plan, scripted_plugin
):
    first = scripted_plugin("first", answers={"x:y": "first"})
    late = scripted_plugin("late", namespaces=["z"], answers={"x:y": "late", "z:q": "late"})

    async def main() -> list[Any]:
        async with Host(make_plan(first)) as host:
            replies = [await host.dispatch("x:y", {}), await host.dispatch("z:q", {})]
            host.manager.register(late)  # both routes are cached now
            replies += [await host.dispatch("x:y", {}), await host.dispatch("z:q", {})]
            host.manager.unregister(first)
            replies.append(await host.dispatch("x:y", {}))
        return replies

    codes = [r["error"]["code"] if isinstance(r, dict) else r for r in asyncio.run(main())]
    assert codes == ["first", "NO_HANDLER", "first", "late", "NO_HANDLER"]
