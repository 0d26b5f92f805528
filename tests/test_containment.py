"""Containment of in-process plugins, against a real daemon with a healthy plugin beside them.

Each case: the faulty plugin is answered with TIMEOUT (or fails to start, or is cut
short in its shutdown), the healthy plugin answers within 1 s throughout, the log
names the plugin, and SIGTERM at the end exits 0 within its deadline.
"""

from __future__ import annotations

import pytest

from tests.conftest import error_code
from tests.containment import Prober, ask, contained_daemon, stop_cleanly

pytestmark = pytest.mark.slow

MUTATOR = """
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Mutator(BasePlugin):
    @hookimpl(tryfirst=True)
    def ksi_validate_event(self, event_name, data):
        data["value"] = "changed by the validator"

    @hookimpl(tryfirst=True)
    def ksi_handle_event(self, event_name, data, context):
        data["value"] = "changed by a handler"
        data.setdefault("extra", []).append(1)


plugin = Mutator(PluginMetadata(name="mutator"), PluginCapabilities(event_namespaces=["state"]))
"""

CATCH_ALL = """
import asyncio, signal
from ksi_host import BasePlugin, PluginMetadata, hookimpl


class Broken(BasePlugin):
    @hookimpl
    def ksi_startup(self):
        # takes the signal wakeup fd: SIGTERM must still stop the daemon
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, print)

    @hookimpl
    def ksi_filter_event(self, event_name, data):
        if event_name.startswith("test:"):
            return data
        raise RuntimeError("this filter is broken")

    @hookimpl
    def ksi_validate_event(self, event_name, data):
        if not event_name.startswith("test:"):
            raise ValueError("this validator is broken")


plugin = Broken(PluginMetadata(name="broken"))
"""


def test_stalling_handlers_are_answered_timeout_and_the_others_keep_answering():
    host = "\n[host.call_timeouts]\nfaulty = 0.3\n"
    with contained_daemon({"faulty": {}}, host=host, files={"mutator.py": MUTATOR}) as daemon:
        daemon.start()
        with Prober(daemon.socket_path) as prober:
            for action in ("sleep", "spin", "await", "emitloop"):
                answer = ask(daemon.socket_path, f"faulty:{action}")
                assert error_code(answer) == "TIMEOUT", (action, answer)
                assert answer["error"]["plugin"] == "faulty"
                assert "0.3 s" in answer["error"]["message"]
                assert ask(daemon.socket_path, "faulty:ping")["pong"] == "faulty"
        prober.check()
        log = daemon.log()
        assert "event loop blocked" in log
        assert "plugin 'faulty' in ksi_handle_event on 'faulty:sleep'" in log
        assert "plugin 'faulty' in ksi_handle_event on 'faulty:spin'" in log
        assert "time.sleep(1000)" in log  # the stack
        listed = {p["name"]: p for p in ask(daemon.socket_path, "plugin:list")["plugins"]}
        assert listed["faulty"]["stalls"] >= 2
        assert listed["faulty"]["status"] == "running"
        metrics = ask(daemon.socket_path, "system:metrics")["metrics"]["ksi_host"]
        assert metrics["stalls"]["faulty"] >= 2
        assert metrics["errors"]["TIMEOUT"] == 4

        sent = {"key": "k", "value": "as sent"}
        assert ask(daemon.socket_path, "state:set", sent).get("status") != "error"
        assert ask(daemon.socket_path, "state:get", {"key": "k"})["value"] == "as sent"
        history = ask(daemon.socket_path, "system:history", {"namespace": "state"})
        assert [e["data"] for e in history["events"]] == [sent, {"key": "k"}]
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_stalling_startup_and_shutdown_are_cut_short():
    plugins = {
        "sleepy_start": {"startup": "sleep"},
        "spinning_start": {"startup": "spin"},
        "waiting_start": {"startup": "await"},
        "sleepy_stop": {"shutdown": "sleep"},
        "spinning_stop": {"shutdown": "spin"},
        "waiting_stop": {"shutdown": "await"},
    }
    with contained_daemon(plugins) as daemon:
        daemon.start()
        with Prober(daemon.socket_path) as prober:
            listed = {p["name"]: p for p in ask(daemon.socket_path, "plugin:list")["plugins"]}
            for name in ("sleepy_start", "spinning_start", "waiting_start"):
                assert listed[name]["status"] == "failed"
                assert listed[name]["reason"]["code"] == "startup-failed"
            assert (
                "blocked the event loop in ksi_startup"
                in listed["sleepy_start"]["reason"]["message"]
            )
            assert "did not finish ksi_startup" in listed["waiting_start"]["reason"]["message"]
            for name in ("sleepy_stop", "spinning_stop", "waiting_stop"):
                assert listed[name]["status"] == "running"
                assert ask(daemon.socket_path, f"{name}:ping")["pong"] == name
        prober.check()
        stop_cleanly(daemon, deadline=1.0 + 8.0)
        log = daemon.log()
        assert "plugin 'sleepy_stop' in ksi_shutdown" in log
        assert "plugin 'spinning_stop' in ksi_shutdown" in log
        assert "plugin 'waiting_stop' did not finish ksi_shutdown" in log


STUBBORN = """
import time
from ksi_host import BasePlugin, PluginMetadata, PluginCapabilities, hookimpl


class Stubborn(BasePlugin):
    @hookimpl
    def ksi_shutdown(self):
        while True:
            try:
                time.sleep(1000)
            except BaseException:
                pass


plugin = Stubborn(PluginMetadata(name="stubborn"), PluginCapabilities(commands=["stub:x"]))
"""


def test_a_stop_that_cannot_finish_is_forced_within_drain_plus_grace():
    with contained_daemon({}, files={"stubborn.py": STUBBORN}, grace=2.0) as daemon:
        daemon.start()
        assert daemon.proc is not None
        daemon.proc.send_signal(15)
        code = daemon.proc.wait(1.0 + 2.0 + 5)
        assert code == 1, daemon.log()
        assert not daemon.socket_path.exists()
        assert not daemon.socket_path.with_name("ksi.sock.lock").exists()
        log = daemon.log()
        assert "still running 3 s after SIGTERM" in log
        assert "plugin 'stubborn' in ksi_shutdown blocks the stop" in log


def test_a_failing_catch_all_filter_cannot_hide_the_diagnostic_events():
    with contained_daemon({}, files={"broken.py": CATCH_ALL}) as daemon:
        daemon.start()
        with Prober(daemon.socket_path) as prober:
            assert ask(daemon.socket_path, "system:health")["status"] == "healthy"
            assert "metrics" in ask(daemon.socket_path, "system:metrics")
            names = [p["name"] for p in ask(daemon.socket_path, "plugin:list")["plugins"]]
            assert "broken" in names
            failed = ask(daemon.socket_path, "state:get", {"key": "k"})
            assert error_code(failed) == "INTERNAL_ERROR"
            assert failed["error"]["plugin"] == "broken"
        prober.check()
        stop_cleanly(daemon, deadline=1.0 + 8.0)
