"""Isolated plugins against a real daemon: each faulty plugin runs in its own worker process.

The healthy in-process plugin answers within 1 s throughout; a worker that crashes is
restarted and answers again; a worker that stalls is answered TIMEOUT, killed and
restarted; SIGTERM at the end exits 0 within its deadline and removes the socket.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ksi_host._config import HostConfig, HostSection
from ksi_host._isolation import WorkerPlugin, describe_isolated
from ksi_host._lifecycle import Host
from ksi_host._plan import Candidate, LoadPlan, Origin
from ksi_host._wire import PROTOCOL_VERSION
from tests.conftest import error_code
from tests.containment import Prober, ask, contained_daemon, faulty_plugin, stop_cleanly

pytestmark = pytest.mark.slow

ISOLATED = """
isolated = ["iso"]
worker_memory_mb = 400
restart_limit = 10
[host.call_timeouts]
iso = 1.5
"""


def _answered(sock: Path, event: str, within: float = 30) -> Any:
    """Ask until the (restarting) plugin answers without an error."""
    deadline = time.monotonic() + within
    while True:
        answer = ask(sock, event)
        if error_code(answer) is None or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def _iso(sock: Path) -> dict[str, Any]:
    [entry] = [p for p in ask(sock, "plugin:list")["plugins"] if p["name"] == "iso"]
    return entry


def test_an_isolated_plugin_that_crashes_or_stalls_is_answered_and_restarted():
    with contained_daemon({"iso": {}}, host=ISOLATED) as daemon:
        daemon.start()
        sock = daemon.socket_path
        with Prober(sock) as prober:
            first = ask(sock, "iso:ping")
            assert first["pong"] == "iso"
            assert first["pid"] == _iso(sock)["worker"]["pid"] != daemon.proc.pid
            emitted = ask(sock, "iso:emit", {"event": "test:echo", "data": {"a": 1}})
            assert emitted == {"answer": {"echo": {"a": 1}}}

            pids = {first["pid"]}
            for action, cause in (
                ("segv", "was killed by SIGSEGV"),
                ("exit", "exited with code 3"),
            ):
                crashed = ask(sock, f"iso:{action}")
                assert error_code(crashed) == "PLUGIN_CRASHED", crashed
                assert crashed["error"]["plugin"] == "iso"
                assert f"{cause} while handling 'iso:{action}'" in crashed["error"]["message"]
                again = _answered(sock, "iso:ping")
                assert again["pong"] == "iso"
                assert again["pid"] not in pids
                pids.add(again["pid"])

            for action in ("sleep", "spin", "await", "emitloop"):
                stalled = ask(sock, f"iso:{action}")
                assert error_code(stalled) == "TIMEOUT", (action, stalled)
                assert stalled["error"]["plugin"] == "iso"
                again = _answered(sock, "iso:ping")
                assert "pid" in again, (again, daemon.log())
                assert again["pid"] not in pids
                pids.add(again["pid"])

            hog = ask(sock, "iso:hog", {"mb": 800})
            assert error_code(hog) == "INTERNAL_ERROR"  # MemoryError under worker_memory_mb
            assert _answered(sock, "iso:ping")["pid"] in pids  # the same worker lives on

            entry = _iso(sock)
            assert entry["status"] == "running"
            assert entry["worker"]["restarts"] == 6
        prober.check()
        log = daemon.log()
        assert "the worker of plugin 'iso'" in log
        assert "killing the worker of plugin 'iso'" in log
        assert "MemoryError" in log
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_an_isolated_plugin_that_keeps_crashing_stays_failed_with_the_reason():
    host = (
        'isolated = ["*"]\nrestart_limit = 1\nworker_cpu_seconds = 1\n'
        "[host.call_timeouts]\niso = 20.0\n"
    )
    with contained_daemon({"iso": {}}, host=host) as daemon:
        daemon.start()
        sock = daemon.socket_path
        with Prober(sock) as prober:
            assert ask(sock, "system:health")["status"] == "healthy"
            spun = ask(sock, "iso:spin", timeout=30)  # past worker_cpu_seconds: SIGXCPU
            assert error_code(spun) == "PLUGIN_CRASHED"
            assert "was killed by SIGXCPU while handling 'iso:spin'" in spun["error"]["message"]
            _answered(sock, "iso:ping")
            crashed = ask(sock, "iso:segv")
            assert "is not restarted again" in crashed["error"]["message"]
            entry = _iso(sock)
            assert entry["status"] == "failed"
            assert entry["reason"]["code"] == "worker-crashed"
            assert "crashed 2 times within 60 s" in entry["reason"]["message"]
            health = ask(sock, "system:health")  # the host's kept statuses saw the worker fail
            assert (health["status"], health["failed"]) == ("degraded", ["iso"])
            refused = ask(sock, "iso:ping")
            assert error_code(refused) == "PLUGIN_CRASHED"
            assert "is not restarted again" in refused["error"]["message"]
        prober.check()
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_stalls_in_an_isolated_plugins_startup_and_shutdown_stop_only_its_worker():
    plugins = {
        "iso_sleep_start": {"startup": "sleep"},
        "iso_spin_start": {"startup": "spin"},
        "iso_wait_start": {"startup": "await"},
        "iso_sleep_stop": {"shutdown": "sleep"},
        "iso_spin_stop": {"shutdown": "spin"},
        "iso_wait_stop": {"shutdown": "await"},
    }
    with contained_daemon(plugins, host='isolated = ["*"]\n') as daemon:
        daemon.start()
        sock = daemon.socket_path
        with Prober(sock) as prober:
            listed = {p["name"]: p for p in ask(sock, "plugin:list")["plugins"]}
            for name in ("iso_sleep_start", "iso_spin_start", "iso_wait_start"):
                assert listed[name]["status"] == "failed", listed[name]
                assert "did not finish ksi_startup" in listed[name]["reason"]["message"]
            for name in ("iso_sleep_stop", "iso_spin_stop", "iso_wait_stop"):
                assert ask(sock, f"{name}:ping")["pong"] == name
        prober.check()
        stop_cleanly(daemon, deadline=1.0 + 8.0)
        assert "plugin 'iso_sleep_stop' did not finish ksi_shutdown" in daemon.log()


FAKE_WORKER = """
import json, socket, struct, sys
sock = socket.socket(fileno=int(sys.argv[1]))
size = struct.unpack(">I", sock.recv(4))[0]
while size:
    size -= len(sock.recv(size))
body = json.dumps({"op": "ready", "protocol": 99, "pid": 1, "hooks": []}).encode()
sock.sendall(struct.pack(">I", len(body)) + body)
sock.recv(1)
"""


def test_a_worker_speaking_another_protocol_fails_the_plugin_with_both_versions(tmp_path):
    fake = tmp_path / "fake_worker.py"
    fake.write_text(FAKE_WORKER)
    path = faulty_plugin(tmp_path, "iso")
    candidate = Candidate("iso", Origin("path", str(path)), file=path)
    [spec], excluded = describe_isolated([candidate], HostSection(), {})
    assert not excluded
    assert isinstance(spec.plugin, WorkerPlugin)
    spec.plugin.command = (sys.executable, str(fake))
    host = Host(LoadPlan(order=(spec,)), HostConfig())

    async def main() -> Any:
        async with host:
            return host.status()

    [status] = asyncio.run(main())
    assert status.status == "failed"
    assert status.reason is not None
    assert f"speaks protocol 99, this host {PROTOCOL_VERSION}" in status.reason.message
    assert "same environment" in status.reason.hint
