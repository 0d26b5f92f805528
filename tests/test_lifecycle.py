"""Host lifecycle: start in plan order, stop in reverse, and contain every plugin's failure."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic import BaseModel, Field

from ksi_host import PluginStatus
from ksi_host._config import HostConfig
from ksi_host._lifecycle import Host
from ksi_host._plan import Exclusion, LoadPlan, Origin, Reason
from ksi_host.errors import HostStateError
from ksi_host.plugin_base import BasePlugin, TransportPlugin, hookimpl
from ksi_host.plugin_types import PluginMetadata

HOOKS = ("ksi_plugin_context", "ksi_startup", "ksi_shutdown")


def run(host: Host, *events: tuple[str, dict[str, Any]]) -> list[Any]:
    """Start ``host``, dispatch each event, stop; return the answers."""

    async def main() -> list[Any]:
        async with host:
            return [await host.dispatch(name, data) for name, data in events]

    return asyncio.run(main())


def states(host: Host) -> dict[str, str]:
    return {status.name: status.status for status in host.status()}


def test_start_passes_run_in_load_order_and_stop_in_reverse(scripted_plugin, make_plan):
    log: list[tuple[str, str]] = []
    plugins = [scripted_plugin(name, log=log) for name in ("a", "b", "c")]
    host = Host(make_plan(*plugins))
    run(host)
    lifecycle = [(plugin, hook) for plugin, hook in log if hook in HOOKS]
    assert lifecycle == [
        ("a", "ksi_plugin_context"),
        ("b", "ksi_plugin_context"),
        ("c", "ksi_plugin_context"),
        ("a", "ksi_startup"),
        ("b", "ksi_startup"),
        ("c", "ksi_startup"),
        ("c", "ksi_shutdown"),
        ("b", "ksi_shutdown"),
        ("a", "ksi_shutdown"),
    ]
    assert states(host) == {"a": "stopped", "b": "stopped", "c": "stopped"}


@pytest.mark.parametrize(
    ("hook", "code"), [("ksi_plugin_context", "context-failed"), ("ksi_startup", "startup-failed")]
)
def test_a_failing_plugin_takes_down_its_dependents_only(scripted_plugin, make_plan, hook, code):
    log: list[tuple[str, str]] = []
    base = scripted_plugin("base", raises=[hook], log=log, answers={"x:y": "base"})
    middle = scripted_plugin("middle", log=log, dependencies=["base"])
    top = scripted_plugin("top", log=log, dependencies=["middle"])
    other = scripted_plugin("other", log=log, answers={"x:y": "other"})
    plan = make_plan(base, middle, other, top, requires={"middle": ("base",), "top": ("middle",)})
    host = Host(plan)

    async def main() -> Any:
        await host.start()
        during = states(host), await host.dispatch("x:y", {})
        await host.stop()
        return during

    running_states, reply = asyncio.run(main())
    assert running_states == {
        "base": "failed",
        "middle": "failed",
        "top": "failed",
        "other": "running",
    }
    assert reply == "other"  # the failed plugins are no longer called
    status = {s.name: s for s in host.status()}
    assert status["base"].reason.code == code
    assert f"raised RuntimeError in {hook}: base broke in {hook}" in status["base"].reason.message
    assert "Traceback (most recent call last)" in status["base"].reason.traceback
    assert status["top"].reason.code == "dependency-failed"
    assert status["top"].reason.message == (
        f"plugin 'top' needs 'middle', which needs 'base', which failed ({code})"
    )
    assert status["top"].reason.cause is status["middle"].reason
    assert status["top"].reason.root is status["base"].reason
    assert ("middle", "ksi_startup") not in log
    assert ("base", "ksi_shutdown") not in log
    assert ("other", "ksi_shutdown") in log
    assert status["other"].status == "stopped"


def test_a_failing_shutdown_does_not_stop_the_others(scripted_plugin, make_plan):
    log: list[tuple[str, str]] = []
    plugins = [
        scripted_plugin("a", log=log),
        scripted_plugin("b", raises=["ksi_shutdown"], log=log),
        scripted_plugin("c", log=log),
    ]
    host = Host(make_plan(*plugins))
    run(host)
    assert [p for p, hook in log if hook == "ksi_shutdown"] == ["c", "b", "a"]
    assert set(states(host).values()) == {"stopped"}
    reasons = {s.name: s.reason for s in host.status()}
    assert reasons["a"] is None
    assert reasons["c"] is None
    assert reasons["b"].code == "shutdown-failed"
    assert (
        reasons["b"].message
        == "plugin 'b' raised RuntimeError in ksi_shutdown: b broke in ksi_shutdown"
    )
    assert "Traceback (most recent call last)" in reasons["b"].traceback


def test_a_host_with_hundreds_of_plugins_stops_each_in_reverse_order(scripted_plugin, make_plan):
    log: list[tuple[str, str]] = []
    registered_at_shutdown: dict[str, list[str]] = {}

    class Watching(scripted_plugin):  # type: ignore[misc,valid-type]
        @hookimpl
        def ksi_shutdown(self) -> None:
            pm = host.manager.pm
            registered_at_shutdown[self.name] = [name for name, _ in pm.list_name_plugin()]
            super().ksi_shutdown()

    names = [f"p{index}" for index in range(300)]
    raising = {"p150": ["ksi_shutdown"]}
    plugins = [Watching(name, log=log, raises=raising.get(name, ())) for name in names]
    host = Host(make_plan(*plugins))
    run(host)
    assert [p for p, hook in log if hook == "ksi_shutdown"] == names[::-1]
    assert set(states(host).values()) == {"stopped"}
    assert [s.name for s in host.status() if s.reason] == ["p150"]
    assert host.status()[150].reason.code == "shutdown-failed"
    # one at a time: each sees every plugin before it still registered, none after it
    assert all(registered_at_shutdown[n] == names[: i + 1] for i, n in enumerate(names))
    assert host.manager.pm.list_name_plugin() == []
    assert not any(vars(host.manager.pm.hook)[hook].get_hookimpls() for hook in HOOKS)


class Hanging(BasePlugin):
    """Awaits forever in one lifecycle hook, as a plugin stuck on a dead server would."""

    def __init__(self, name: str, hook: str, dependencies: tuple[str, ...] = ()) -> None:
        super().__init__(PluginMetadata(name=name, dependencies=list(dependencies)))
        self.hook = hook
        self.cancelled = False

    async def _maybe_hang(self, hook: str) -> None:
        if hook == self.hook:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    @hookimpl
    async def ksi_plugin_context(self, context):
        await self._maybe_hang("ksi_plugin_context")

    @hookimpl
    async def ksi_startup(self):
        await self._maybe_hang("ksi_startup")

    @hookimpl
    async def ksi_shutdown(self):
        await self._maybe_hang("ksi_shutdown")


FAST = HostConfig(host={"startup_timeout": 0.05, "shutdown_timeout": 0.05})


@pytest.mark.parametrize(
    ("hook", "code"), [("ksi_plugin_context", "context-failed"), ("ksi_startup", "startup-failed")]
)
def test_a_plugin_hanging_at_start_times_out_with_its_dependents(
    scripted_plugin, make_plan, hook, code
):
    stuck = Hanging("stuck", hook)
    needy = scripted_plugin("needy", dependencies=["stuck"])
    other = scripted_plugin("other", answers={"x:y": "other"})
    host = Host(make_plan(stuck, needy, other, requires={"needy": ("stuck",)}), FAST)

    async def main() -> Any:
        await host.start()
        during = states(host), await host.dispatch("x:y", {})
        await host.stop()
        return during

    running, reply = asyncio.run(asyncio.wait_for(main(), 10))
    assert running == {"stuck": "failed", "needy": "failed", "other": "running"}
    assert reply == "other"
    status = {s.name: s for s in host.status()}
    reason = status["stuck"].reason
    assert reason.code == code
    assert reason.message == f"plugin 'stuck' did not finish {hook} within 0.05 s"
    assert "raise [host] startup_timeout" in reason.hint
    assert "_maybe_hang" in reason.traceback  # where it was stuck
    assert stuck.cancelled
    assert status["needy"].reason.code == "dependency-failed"
    assert status["other"].status == "stopped"


def test_a_plugin_hanging_at_shutdown_is_recorded_and_the_others_stop(scripted_plugin, make_plan):
    log: list[tuple[str, str]] = []
    first = scripted_plugin("first", log=log)
    stuck = Hanging("stuck", "ksi_shutdown")
    last = scripted_plugin("last", log=log)
    host = Host(make_plan(first, stuck, last), FAST)
    asyncio.run(asyncio.wait_for(_start_stop(host), 10))
    assert [p for p, hook in log if hook == "ksi_shutdown"] == ["last", "first"]
    assert states(host) == {"first": "stopped", "stuck": "stopped", "last": "stopped"}
    reason = host.status()[1].reason
    assert reason.code == "shutdown-failed"
    assert reason.message == "plugin 'stuck' did not finish ksi_shutdown within 0.05 s"
    assert "raise [host] shutdown_timeout" in reason.hint
    assert stuck.cancelled
    assert not host.manager.pm.is_registered(stuck)


async def _start_stop(host: Host) -> None:
    async with host:
        pass


def test_a_plugin_raising_in_every_hook_never_takes_the_host_down(scripted_plugin, make_plan):
    every = (*HOOKS, "ksi_filter_event", "ksi_validate_event", "ksi_handle_event")
    hooks = (*every, "ksi_metrics_collected")
    broken = scripted_plugin("broken", raises=hooks)
    host = Host(make_plan(broken, scripted_plugin("fine", answers={"a:b": {"ok": 1}})))

    async def main() -> tuple[Any, Any]:
        async with host:
            return await host.dispatch("a:b", {}), await host.metrics()

    reply, metrics = asyncio.run(main())
    assert reply == {"ok": 1}
    assert metrics["fine"] == {"hooks_called": 6}  # context, startup, 3 event hooks, metrics
    assert states(host) == {"broken": "failed", "fine": "stopped"}


def test_every_hook_failure_is_contained_once_registered(make_plan):
    """A plugin whose context passes but whose event and metrics hooks all raise."""

    class Grumpy(BasePlugin):
        @hookimpl
        def ksi_filter_event(self, event_name, data):
            return data if event_name != "grumpy:filter" else 1 / 0

        @hookimpl
        def ksi_validate_event(self, event_name, data):
            if event_name == "grumpy:validate":
                raise ValueError("no")

        @hookimpl
        def ksi_handle_event(self, event_name, data, context):
            raise RuntimeError("handler")

        @hookimpl
        def ksi_metrics_collected(self, metrics):
            raise RuntimeError("metrics")

        @hookimpl
        async def ksi_shutdown(self):
            raise RuntimeError("shutdown")

    host = Host(make_plan(Grumpy(PluginMetadata(name="grumpy"))))

    async def main() -> list[Any]:
        async with host:
            replies = [await host.dispatch(f"grumpy:{w}", {}) for w in ("filter", "validate", "x")]
            return [*replies, await host.metrics()]

    filtered, validated, handled, metrics = asyncio.run(main())
    assert [r["error"]["code"] for r in (filtered, validated, handled)] == [
        "INTERNAL_ERROR",
        "INVALID_INPUT",
        "INTERNAL_ERROR",
    ]
    assert metrics["ksi_host"]["metrics_failed"] == ["grumpy"]
    assert states(host) == {"grumpy": "stopped"}


def test_coroutine_lifecycle_hooks_are_awaited(make_plan):
    class Slow(BasePlugin):
        def __init__(self) -> None:
            super().__init__(PluginMetadata(name="slow"))
            self.steps: list[str] = []

        @hookimpl
        async def ksi_plugin_context(self, context):
            await asyncio.sleep(0)
            self.steps.append("context")

        @hookimpl
        async def ksi_startup(self):
            await asyncio.sleep(0)
            self.steps.append("startup")

        @hookimpl
        async def ksi_shutdown(self):
            await asyncio.sleep(0)
            self.steps.append("shutdown")

    slow = Slow()
    run(Host(make_plan(slow)))
    assert slow.steps == ["context", "startup", "shutdown"]


class Settings(BaseModel):
    setting: str = "default"
    retries: int = Field(default=3, ge=0)


class Configured(BasePlugin):
    config_model = Settings

    def __init__(self, name: str = "my_plugin") -> None:
        super().__init__(PluginMetadata(name=name))
        self.my_setting: str | None = None

    @hookimpl
    def ksi_plugin_context(self, context):
        config = context.get("config", {})
        self.my_setting = config.get("my_plugin", {}).get("setting", "default")


def test_a_valid_config_section_reaches_the_plugin(make_plan):
    plugin = Configured()
    config = HostConfig(my_plugin={"setting": "custom", "retries": 1})
    host = Host(make_plan(plugin), config)
    run(host)
    assert plugin.my_setting == "custom"


def test_transports_are_attached_for_their_life_on_the_host(make_plan, scripted_plugin):
    class Socketish(TransportPlugin):
        @hookimpl
        def ksi_startup(self):
            self.started = True

    transport = Socketish("sock", "unix")
    host = Host(make_plan(transport, scripted_plugin("echo", answers={"a:b": "pong"})))

    async def main() -> Any:
        async with host:
            return await transport.emit_event("a:b", {})

    assert asyncio.run(main()) == "pong"
    with pytest.raises(RuntimeError, match="not attached"):
        asyncio.run(transport.emit_event("a:b", {}))


def test_status_lists_excluded_plugins_with_their_reason(scripted_plugin, make_plan):
    loaded = make_plan(scripted_plugin("a"))
    reason = Reason("disabled", "disabled in [host] disabled", "remove it from the list")
    plan = LoadPlan(
        order=loaded.order, excluded=(Exclusion("off", Origin("folder", "/p"), reason),)
    )
    host = Host(plan)
    assert [s.model_dump() for s in host.entries()] == [
        {
            "name": "a",
            "version": "1.0",
            "source": "path test",
            "status": "pending",
            "position": 1,
            "requires": [],
            "reason": None,
            "warnings": [],
            "import_ms": None,
        },
        {
            "name": "off",
            "version": None,
            "source": "folder /p",
            "status": "disabled",
            "position": None,
            "requires": [],
            "reason": {
                "code": "disabled",
                "message": "disabled in [host] disabled",
                "hint": "remove it from the list",
                "cause": None,
                "traceback": None,
                "requirement": None,
                "providers": [],
                "cycle": [],
                "hook": None,
                "path": None,
                "line": None,
                "key": None,
            },
            "warnings": [],
            "import_ms": None,
        },
    ]


def test_an_after_dependency_that_fails_to_start_leaves_its_follower_running(
    scripted_plugin, make_plan
):
    first = scripted_plugin("first", raises=["ksi_startup"])
    follower = scripted_plugin("follower", answers={"f:x": "here"})
    plan = replace(make_plan(first, follower), requires={"follower": ("first",)}, needs={})
    host = Host(plan)

    async def main() -> Any:
        async with host:
            return states(host), await host.dispatch("f:x", {})

    assert asyncio.run(main()) == ({"first": "failed", "follower": "running"}, "here")
    assert host.failed() == ("first",)


def test_metrics_gather_plugins_and_the_hosts_own(scripted_plugin, make_plan):
    a = scripted_plugin("a", namespaces=["alpha"], answers={"alpha:x": 1})
    host = Host(make_plan(a, scripted_plugin("b", raises=["ksi_handle_event"])))

    async def main() -> dict[str, Any]:
        async with host:
            await host.dispatch("alpha:x", {})
            await host.dispatch("beta:x", {})
            await host.dispatch("Bad Name", {})
            return await host.metrics()

    metrics = asyncio.run(main())
    own = metrics["ksi_host"]
    assert metrics["a"]["hooks_called"] > 0
    assert own["events"] == {"alpha": 1, "beta": 1}
    assert own["errors"] == {"INTERNAL_ERROR": 2, "INVALID_EVENT_NAME": 1}
    assert own["handlers"]["a"]["calls"] == 1
    assert own["handlers"]["b"] == {
        "calls": 2,
        "errors": 2,
        "time_ms": own["handlers"]["b"]["time_ms"],
    }
    assert own["plugins"] == {"running": 2}
    assert own["metrics_failed"] == []


def test_a_host_starts_once(make_plan):
    host = Host(make_plan())

    async def main() -> None:
        await host.stop()  # stopping a host that never started is harmless
        with pytest.raises(HostStateError, match="cannot start a host that is stopped"):
            await host.start()

    asyncio.run(main())
    again = Host(make_plan())
    run(again)
    with pytest.raises(HostStateError) as info:
        asyncio.run(again.start())
    assert info.value.hint.startswith("a Host starts once")


def expected_states(plugins: list[Any]) -> dict[str, tuple[str, str | None]]:
    """A model of start: the context pass, then the startup pass, each failing dependents."""
    state = {p.name: ("pending", None) for p in plugins}

    def fail(name: str, code: str) -> None:
        state[name] = ("failed", code)
        for p in plugins:  # load order: a dependent comes after what it needs
            if state[p.name][0] == "pending" and any(
                state[dep][0] == "failed" for dep in p.metadata.dependencies
            ):
                state[p.name] = ("failed", "dependency-failed")

    for hook, code in (("ksi_plugin_context", "context-failed"), ("ksi_startup", "startup-failed")):
        for p in plugins:
            if state[p.name][0] == "pending" and hook in p.raises:
                fail(p.name, code)
    return {name: ("running", None) if s == "pending" else (s, c) for name, (s, c) in state.items()}


def test_lifecycle_state_machine(scripted_plugin, make_plan):
    """Random plans (with dependencies and failing hooks), started, used and stopped."""

    class Lifecycle(RuleBasedStateMachine):
        @initialize(
            specs=st.lists(
                st.tuples(
                    st.sets(st.sampled_from((*HOOKS, "ksi_handle_event"))),
                    st.sets(st.integers(min_value=0, max_value=5)),
                ),
                max_size=6,
            )
        )
        def build(self, specs: list[tuple[set[str], set[int]]]) -> None:
            self.log: list[tuple[str, str]] = []
            self.plugins = []
            requires = {}
            for index, (raises, deps) in enumerate(specs):
                needs = tuple(sorted(f"p{d}" for d in deps if d < index))
                self.plugins.append(
                    scripted_plugin(
                        f"p{index}",
                        raises=raises,
                        log=self.log,
                        dependencies=needs,
                        answers={"ping:all": index},
                    )
                )
                requires[f"p{index}"] = needs
            self.host = Host(make_plan(*self.plugins, requires=requires))
            self.phase = "new"

        def running(self) -> list[Any]:
            names = {s.name for s in self.host.status() if s.status == "running"}
            return [p for p in self.plugins if p.name in names]

        @precondition(lambda self: self.phase == "new")
        @rule()
        def start(self) -> None:
            asyncio.run(self.host.start())
            self.phase = "running"
            actual = {
                s.name: (s.status, s.reason.code if s.reason else None) for s in self.host.status()
            }
            assert actual == expected_states(self.plugins)

        @rule()
        def dispatch(self) -> None:
            reply = asyncio.run(self.host.dispatch("ping:all", {}))
            answers = [
                (p.name, "error" if "ksi_handle_event" in p.raises else p.answers["ping:all"])
                for p in reversed(self.running())
            ]
            if not answers:
                assert reply["error"]["code"] == "NO_HANDLER"
            elif len(answers) == 1:
                [(name, answer)] = answers
                if answer == "error":
                    assert reply["error"] == {
                        "code": "INTERNAL_ERROR",
                        "message": f"plugin {name!r} failed while handling 'ping:all'; "
                        "see the host's log",
                        "plugin": name,
                    }
                else:
                    assert reply == answer
            else:
                assert reply["status"] == "multiple"
                assert [(r["plugin"], r.get("result", "error")) for r in reply["results"]] == (
                    answers
                )

        @precondition(lambda self: self.phase == "running")
        @rule()
        def stop(self) -> None:
            running = [p.name for p in self.running()]
            self.log.clear()
            asyncio.run(self.host.stop())
            self.phase = "stopped"
            assert [p for p, hook in self.log if hook == "ksi_shutdown"] == running[::-1]
            assert all(s.status in ("stopped", "failed") for s in self.host.status())

        @invariant()
        def registered_means_running(self) -> None:
            if hasattr(self, "host"):
                pm = self.host.manager.pm
                running = self.running()
                assert [p for p in self.plugins if pm.is_registered(p)] == running

        @invariant()
        def dependents_of_failures_do_not_run(self) -> None:
            if hasattr(self, "host"):
                names = {p.name for p in self.running()}
                for plugin in self.running():
                    assert set(plugin.metadata.dependencies) <= names

    run_state_machine_as_test(
        Lifecycle, settings=settings(max_examples=60, stateful_step_count=8, deadline=None)
    )


def test_the_config_a_plugin_gets_is_read_only(make_plan):
    class Meddler(BasePlugin):
        """Tries to change the config it was given."""

        @hookimpl
        def ksi_plugin_context(self, context):
            context["config"]["my_plugin"]["setting"] = "meddled"

    class Reader(BasePlugin):
        @hookimpl
        def ksi_plugin_context(self, context):
            self.seen = context["config"]

        @hookimpl
        def ksi_handle_event(self, event_name, data, context):
            return {"same": context["config"] is self.seen, "config": context["config"]}

    meddler = Meddler(PluginMetadata(name="meddler"))
    reader = Reader(PluginMetadata(name="reader"))
    config = HostConfig(my_plugin={"setting": "custom", "retries": [1, 2]})

    async def main() -> tuple[Any, tuple[PluginStatus, ...]]:
        async with Host(make_plan(meddler, reader), config) as host:
            return await host.dispatch("x:y", {}), host.status()

    reply, statuses = asyncio.run(main())
    assert reply["same"] is True  # the handler gets the plugin's own context again
    assert reply["config"]["my_plugin"] == {"setting": "custom", "retries": (1, 2)}
    [meddler_status] = [status for status in statuses if status.name == "meddler"]
    assert meddler_status.status == "failed"
    assert meddler_status.reason is not None
    assert "does not support item assignment" in meddler_status.reason.message
    assert config.plugin_section("my_plugin") == {"setting": "custom", "retries": [1, 2]}


def test_no_handler_names_the_declaring_plugin_that_is_not_running(scripted_plugin, make_plan):
    weather = scripted_plugin("weather", commands=["weather:ping"], raises=["ksi_startup"])
    excluded_spec = make_plan(scripted_plugin("radio", namespaces=["radio"])).order[0]
    exclusion = Exclusion(
        "radio",
        excluded_spec.origin,
        Reason("missing-dependency", "radio needs antenna"),
        excluded_spec,
    )
    plan = replace(make_plan(weather), excluded=(exclusion,))

    async def main() -> list[Any]:
        async with Host(plan) as host:
            return [
                await host.dispatch(name, {}) for name in ("weather:ping", "radio:on", "other:x")
            ]

    weather_reply, radio_reply, other_reply = asyncio.run(main())
    assert weather_reply["error"]["code"] == "NO_HANDLER"
    assert weather_reply["error"]["message"].startswith(
        "no plugin handles 'weather:ping'; plugin 'weather' declares it but is failed: "
    )
    assert radio_reply["error"]["message"] == (
        "no plugin handles 'radio:on'; plugin 'radio' declares it but is excluded: "
        "radio needs antenna (see plugin:list or ksi-host doctor)"
    )
    assert other_reply["error"]["message"] == "no plugin handles 'other:x'"
