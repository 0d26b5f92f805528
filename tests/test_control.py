"""``ksi-host status`` and ``ksi-host stop`` against real daemon subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import DAEMON_EVENTS, DaemonProcess

from ksi_host import __version__
from ksi_host._control import DaemonStatus, render_status
from ksi_host._instance import lock_holder


def _socket_args(daemon: DaemonProcess) -> tuple[str, ...]:
    return ("--socket", str(daemon.socket_path))


def test_status_events_and_stop_of_a_running_daemon(daemon_factory):
    daemon = daemon_factory()
    config = daemon.root / "other.toml"
    config.write_text(
        daemon.config_path.read_text().replace(
            "[server]\n", f"[server]\nsocket_path = {json.dumps(str(daemon.socket_path))}\n"
        )
    )
    proc = daemon.start("run", "--config", str(config), "--plugin-path", str(DAEMON_EVENTS))
    result = daemon.cli("status", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"ksi-host is running (pid {proc.pid})"
    assert f"  socket:  {daemon.socket_path}" in result.stdout
    assert f"  version: {__version__}" in result.stdout
    as_json = json.loads(daemon.cli("status", "--json", *_socket_args(daemon)).stdout)
    assert as_json["running"] is True
    assert as_json["pid"] == proc.pid
    assert as_json["version"] == __version__
    assert as_json["uptime"] >= 0
    assert as_json["plugins"]["running"] >= 6
    assert as_json["plugins"]["total"] == sum(
        count for state, count in as_json["plugins"].items() if state != "total"
    )

    events = daemon.send("system:events")
    assert events.returncode == 0, events.stderr
    catalog = json.loads(events.stdout)
    by_event = {entry["event"]: entry for entry in catalog["events"]}
    assert by_event["system:health"]["plugin"] == "health"
    assert "uptime" in by_event["system:health"]["description"]
    assert by_event["test:echo"]["plugin"] == "daemon_events"
    assert by_event["system:events"]["plugin"] == "plugins"
    typo = daemon.send("sytem:health")
    assert typo.returncode == 1
    assert json.loads(typo.stdout)["error"] == {
        "code": "NO_HANDLER",
        "message": "no plugin handles 'sytem:health'; did you mean 'system:health'?",
    }
    planned = daemon.cli("events", "--json", "--plugin-path", str(DAEMON_EVENTS))
    assert json.loads(planned.stdout)["events"] == catalog["events"]

    stopped = daemon.cli("stop", "--config", str(config))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"ksi-host (pid {proc.pid}) stopped"
    assert proc.wait(timeout=5) == 0
    assert "received SIGTERM: stopping" in daemon.log()
    assert not daemon.socket_path.exists()
    after = daemon.cli("status", *_socket_args(daemon))
    assert after.returncode == 3
    assert after.stdout.splitlines()[0] == "ksi-host is not running"
    again = daemon.cli("stop", *_socket_args(daemon))
    assert again.returncode == 0
    assert again.stdout.strip() == f"ksi-host is not running (socket {daemon.socket_path})"


def test_stop_says_when_the_timeout_ends_first_and_status_sees_a_killed_daemon(
    daemon_factory,
):
    daemon = daemon_factory()
    proc = daemon.start()
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        result = daemon.cli("stop", "--timeout", "0.5", *_socket_args(daemon))
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"error[stop-timeout]: the daemon (pid {proc.pid}) is still running 0.5s after SIGTERM",
            f"  where: socket {daemon.socket_path}",
            "  hint: it may still be draining requests or stopping plugins (see its log); wait "
            f"with a larger --timeout, or end it at once with kill -KILL {proc.pid}",
        ]
    finally:
        proc.kill()
        proc.wait()
    assert daemon.socket_path.exists()
    status = daemon.cli("status", *_socket_args(daemon))
    assert status.returncode == 3
    assert status.stdout.splitlines() == [
        "ksi-host is not running",
        f"  socket:  {daemon.socket_path}",
        "  note:    a socket file left by a daemon that did not stop cleanly is in the way "
        "(the next ksi-host run replaces it)",
    ]
    assert lock_holder(daemon.socket_path) is None


def test_stop_refuses_to_signal_a_pid_that_is_not_a_ksi_host_daemon(short_dir):
    socket_path = short_dir / "run" / "ksi.sock"
    socket_path.parent.mkdir(mode=0o700)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(socket_path) + '.lock'!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        assert lock_holder(socket_path) == holder.pid
        result = subprocess.run(
            [sys.executable, "-m", "ksi_host", "stop", "--socket", str(socket_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.startswith(
            f"error[not-ksi-host]: refusing to signal pid {holder.pid}: its command line is "
            f"not ksi-host's: {sys.executable} -c"
        )
        time.sleep(0.1)
        assert holder.poll() is None
        status = subprocess.run(
            [sys.executable, "-m", "ksi_host", "status", "--socket", str(socket_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert status.returncode == 0
        assert f"(pid {holder.pid})" in status.stdout
        assert (
            "note:    it holds the socket's lock but does not listen on the socket (yet)"
            in status.stdout
        )
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (59.9, "59s"), (3723, "1h 2min 3s"), (90061, "1d 1h 1min 1s")],
)
def test_uptime_is_shown_in_days_hours_minutes_and_seconds(seconds, shown):
    status = DaemonStatus(running=True, socket="/s", pid=7, uptime=seconds)
    assert render_status(status).splitlines()[2] == f"  uptime:  {shown}"


def test_a_degraded_daemon_is_running_and_names_its_failed_plugins():
    status = DaemonStatus(
        running=True,
        socket="/s",
        pid=7,
        version="1.0",
        plugins={"total": 3, "failed": 1, "running": 2},
        health="degraded",
        failed=["broken"],
    )
    assert render_status(status).splitlines() == [
        "ksi-host is running (pid 7, degraded)",
        "  socket:  /s",
        "  version: 1.0",
        "  plugins: 3 (1 failed, 2 running)",
        "  failed:  broken (see ksi-host plugins)",
    ]
