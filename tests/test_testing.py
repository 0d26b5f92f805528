"""ksi_host.testing: a plugin under the harness answers exactly as it does through the daemon."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import socket
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import DaemonProcess

from ksi_host import (
    BasePlugin,
    PluginCapabilities,
    PluginContext,
    PluginMetadata,
    PluginStatus,
    hookimpl,
)
from ksi_host.errors import ConfigError
from ksi_host.testing import Emitted, HarnessError, PluginHarness, SyncPluginHarness

CHECKED = Path(__file__).with_name("fixture_plugins") / "checked_events.py"


def _load_checked() -> ModuleType:
    spec = importlib.util.spec_from_file_location("checked_events_for_harness", CHECKED)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checked = _load_checked()

CASES: list[tuple[str, Any]] = [
    ("checked:add", {"by": 2}),
    ("checked:add", {"by": "two"}),  # the validator rejects it
    ("checked:add", {}),
    ("checked:secret", {}),  # the filter blocks it
    ("checked:echo", {"x": [1, 2]}),  # a tuple in the answer arrives as a list
    ("checked:refuse", {}),
    ("checked:unknown", {}),
    ("Checked:add", {"by": 1}),  # not an event name
]


def _send_raw(sock_path: Path, event: str, data: Any) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        sock.sendall(json.dumps({"event": event, "data": data}).encode() + b"\n")
        line = sock.makefile("rb").readline()
    return json.loads(line)["data"]


@pytest.mark.slow
def test_the_harness_answers_exactly_as_the_daemon_does(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir)
    (short_dir / "ksi.toml").write_text(
        (short_dir / "ksi.toml").read_text() + "\n[checked_events]\nstart = 10\n"
    )
    daemon.start(*daemon.run_args(), "--plugin-path", str(CHECKED))
    try:
        through_daemon = [_send_raw(daemon.socket_path, event, data) for event, data in CASES]
    finally:
        daemon.stop()
    with SyncPluginHarness(
        checked.CheckedEventsPlugin(), config={"checked_events": {"start": 10}}
    ) as harness:
        under_harness = [harness.send(event, data) for event, data in CASES]
    assert under_harness == through_daemon
    assert under_harness[1] == {
        "status": "error",
        "error": {
            "code": "INVALID_INPUT",
            "message": "checked:add needs an integer 'by', e.g. {\"by\": 2}",
            "plugin": "checked_events",
        },
    }
    assert under_harness[0] == {"total": 12, "stamped": True}
    assert under_harness[3]["error"]["code"] == "BLOCKED"
    assert under_harness[4] == {"data": {"x": [1, 2], "stamped": True}, "pair": [1, 2]}


def test_send_runs_filter_validate_handle_and_records_what_plugins_emit() -> None:
    async def main() -> tuple[list[Any], list[Emitted], PluginContext[Any]]:
        plugin = checked.CheckedEventsPlugin()
        async with PluginHarness(plugin, config={"checked_events": {"start": 1}}) as h:
            replies = [await h.send("checked:add", {"by": 2}), await h.send("checked:add")]
            assert plugin.context is not None
            return replies, list(h.emitted), plugin.context

    replies, emitted, context = asyncio.run(main())
    assert replies[0] == {"total": 3, "stamped": True}
    assert replies[1]["error"]["code"] == "INVALID_INPUT"
    assert emitted == [Emitted("checked:added", {"total": 3})]
    assert context.settings == checked.CheckedSettings(start=1)
    assert context.plugin == "checked_events"
    assert context.logger.name == "ksi_host.plugins.checked_events"
    assert context["config"]["checked_events"] == {"start": 1}


class Needy(BasePlugin):
    def __init__(self, name: str, *needs: str, fail: bool = False) -> None:
        super().__init__(
            PluginMetadata(name=name, version="1.0", dependencies=list(needs)),
            PluginCapabilities(commands=[f"{name}:ping"]),
        )
        self.fail = fail
        self.log: list[str] = []

    @hookimpl
    def ksi_startup(self) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    @hookimpl
    def ksi_shutdown(self) -> None:
        self.log.append(f"stop {self.name}")

    @hookimpl
    def ksi_handle_event(self, event_name: str) -> dict[str, str] | None:
        return {"pong": self.name} if event_name == f"{self.name}:ping" else None


def test_dependencies_start_first_and_stop_last() -> None:
    log: list[str] = []
    app, db = Needy("app", "db>=1"), Needy("db")
    app.log = db.log = log
    with SyncPluginHarness(app, db) as h:
        assert h.send("app:ping") == {"pong": "app"}
        assert [h.status(name).status for name in ("db", "app")] == ["running", "running"]
    assert log == ["start db", "start app", "stop app", "stop db"]


def test_a_plugin_that_cannot_load_is_reported_not_raised() -> None:
    with SyncPluginHarness(Needy("app", "db"), Needy("broken", fail=True)) as h:
        app, broken = h.status("app"), h.status("broken")
        reply = h.send("broken:ping")
    assert (app.status, app.reason and app.reason.code) == ("excluded", "missing-dependency")
    assert (broken.status, broken.reason and broken.reason.code) == ("failed", "startup-failed")
    assert reply["error"]["code"] == "NO_HANDLER"
    assert "broken cannot start" in reply["error"]["message"]


class Watcher(Needy):
    """Keeps the HostView its context carries, as a plugin that reports on others does."""

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        self.host = context.host


def test_a_plugins_host_view_lists_a_public_plugin_status_for_every_plugin() -> None:
    watcher = Watcher("watcher")
    with SyncPluginHarness(watcher, Needy("broken", fail=True), Needy("app", "db")) as h:
        statuses = watcher.host.status()
        assert all(isinstance(status, PluginStatus) for status in statuses)
        verdicts = {s.name: (s.status, s.reason and s.reason.code) for s in statuses}
        assert verdicts == {
            "watcher": ("running", None),
            "broken": ("failed", "startup-failed"),
            "app": ("excluded", "missing-dependency"),
        }
        assert h.status("broken") in statuses
    [running] = [status for status in statuses if status.status == "running"]
    assert (running.version, running.origin.kind, running.stalls, running.worker) == (
        "1.0",
        "object",
        0,
        None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        running.status = "failed"  # type: ignore[misc]


def test_an_invalid_config_section_excludes_only_that_plugin_as_run_does() -> None:
    with SyncPluginHarness(
        checked.CheckedEventsPlugin(), Needy("other"), config={"checked_events": {"strat": 1}}
    ) as h:
        status = h.status("checked_events")
        assert h.status("other").status == "running"
    assert status.status == "excluded"
    assert status.reason is not None
    assert status.reason.code == "config-invalid"
    assert "strat" in status.reason.message


def test_a_config_that_is_not_a_config_is_a_config_error() -> None:
    harness = PluginHarness(Needy("app"), config={"host": {"startup_timeout": -1}})
    with pytest.raises(
        ConfigError, match=r"PluginHarness\(config=...\), key 'host.startup_timeout'"
    ):
        asyncio.run(harness.start())


def test_asking_for_a_plugin_it_does_not_have_names_those_it_has() -> None:
    with SyncPluginHarness(Needy("app")) as h, pytest.raises(HarnessError) as caught:
        h.status("ap")
    assert caught.value.hint == "the plugins it knows are 'app' (by PluginMetadata.name)"


def test_a_harness_needs_plugins_and_runs_once() -> None:
    with pytest.raises(HarnessError, match="no plugins"):
        PluginHarness()
    harness = SyncPluginHarness(Needy("app"))
    with harness, pytest.raises(HarnessError, match="already running"):
        harness.start()
    with pytest.raises(HarnessError, match="not running"):
        harness.send("app:ping")


def test_data_a_socket_client_could_not_send_is_refused() -> None:
    with SyncPluginHarness(Needy("app")) as h, pytest.raises(HarnessError, match="not JSON"):
        h.send("app:ping", {"when": object()})


def test_with_builtins_keeps_state_out_of_the_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KSI_HOME", str(tmp_path / "home"))
    with SyncPluginHarness(with_builtins=True) as h:
        assert h.send("system:health")["status"] == "healthy"
        assert h.send("state:set", {"key": "k", "value": [1]}) == {"status": "set", "key": "k"}
        path = Path(h.metrics()["state"]["path"])
        assert path.exists()
    assert not (tmp_path / "home").exists()
    assert not path.exists()


class Ticker(BasePlugin):
    """Emits from a task it starts: the sync harness's loop keeps running between calls."""

    def __init__(self) -> None:
        super().__init__(PluginMetadata(name="ticker"), PluginCapabilities(commands=["tick:go"]))
        self.emit: Any = None

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        self.emit = context.emit

    @hookimpl
    def ksi_handle_event(self, event_name: str) -> dict[str, bool] | None:
        if event_name != "tick:go":
            return None
        self.task = asyncio.get_running_loop().create_task(self.emit("tick:done", {"n": 1}))
        return {"started": True}


def test_the_fixture_starts_a_harness_and_stops_it_after_the_test(ksi_harness) -> None:
    h = ksi_harness(Ticker())
    assert h.send("tick:go") == {"started": True}
    h.run(asyncio.sleep(0.05))
    assert h.emitted == [Emitted("tick:done", {"n": 1})]


def test_pytest_finds_the_fixture_through_the_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins["ksi-host"] == "ksi_host._pytest_plugin"
