"""The daemon's log: JSON lines, a rotated file, and the lines an operator needs."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DaemonProcess

from ksi_host._cli import cli
from ksi_host._current import CURRENT_REQUEST
from ksi_host._logging import JsonFormatter

JSON_KEYS = {"time", "level", "logger", "plugin", "event", "correlation_id", "message"}


def _record(message: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("ksi_host.x", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_every_field_and_takes_event_and_id_from_the_request():
    token = CURRENT_REQUEST.set(("state:get", "req-7"))
    try:
        line = JsonFormatter().format(_record("hello %s"))
    finally:
        CURRENT_REQUEST.reset(token)
    entry = json.loads(line)
    assert set(entry) == JSON_KEYS
    assert entry["level"] == "warning"
    assert entry["logger"] == "ksi_host.x"
    assert entry["event"] == "state:get"
    assert entry["correlation_id"] == "req-7"
    assert entry["plugin"] is None
    assert entry["time"].endswith("+00:00")


def test_a_json_line_keeps_the_records_own_fields_and_the_traceback():
    try:
        raise ValueError("bad")
    except ValueError:
        record = _record("failed", plugin="state", event="state:set", hook="ksi_handle_event")
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["plugin"], entry["event"], entry["hook"]) == (
        "state",
        "state:set",
        "ksi_handle_event",
    )
    assert entry["correlation_id"] is None
    assert entry["exception"].splitlines()[-1] == "ValueError: bad"


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def _exchange(path: Path, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        client.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        reader = client.makefile("rb")
        return [json.loads(reader.readline()) for _ in requests]


def _entries(log_file: Path) -> list[dict[str, Any]]:
    files = sorted(log_file.parent.glob(log_file.name + "*"), reverse=True)
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


@pytest.mark.slow
def test_the_log_file_rotates_by_size_and_ends_with_each_plugin_stopped(daemon_factory):
    daemon: DaemonProcess = daemon_factory()
    log_file = daemon.root / "logs" / "ksi.log"
    proc = daemon.start(
        *daemon.run_args(),
        *("--log-format", "json", "--log-file", str(log_file), "--log-level", "debug"),
        *("--log-max-bytes", "4096", "--log-backups", "2"),
        wait=False,
    )
    _wait_for(log_file, "ready: pid", proc)
    assert daemon.log() == ""  # nothing on stderr: it all went to the file
    for n in range(60):
        _exchange(daemon.socket_path, {"event": "system:health", "correlation_id": n})
    stopped = daemon.cli("stop", "--socket", str(daemon.socket_path))
    assert stopped.returncode == 0, stopped.stderr
    assert proc.wait(timeout=10) == 0

    assert sorted(p.name for p in log_file.parent.iterdir()) == [
        "ksi.log",
        "ksi.log.1",
        "ksi.log.2",
    ]
    assert all(p.stat().st_size <= 4096 for p in log_file.parent.iterdir())
    entries = _entries(log_file)
    assert all(set(entry) >= JSON_KEYS for entry in entries)
    last = entries[-40:]
    stopped_plugins = {e["plugin"] for e in last if e["message"].startswith("stopped ")}
    assert {"health", "state", "daemon_events", "unix_socket"} <= stopped_plugins
    assert any(e["message"] == "stopped" and e["logger"] == "ksi_host.daemon" for e in last)
    per_event = [e for e in last if e["logger"] == "ksi_host.dispatch" and e["level"] == "debug"]
    assert per_event[-1]["event"] == "system:health"
    assert per_event[-1]["correlation_id"] == 59
    assert per_event[-1]["message"].startswith("system:health -> answer in ")


@pytest.mark.slow
def test_the_first_log_lines_say_what_ran_what_failed_and_what_was_refused(
    daemon_factory, tmp_path
):
    """Everything before the rotation in the test above, checked on an unrotated log."""
    daemon: DaemonProcess = daemon_factory()
    broken = tmp_path / "broken_plugin.py"
    broken.write_text(
        "from ksi_host.plugin_base import BasePlugin, hookimpl\n"
        "from ksi_host.plugin_types import PluginMetadata\n"
        "class Broken(BasePlugin):\n"
        "    @hookimpl\n"
        "    def ksi_startup(self):\n"
        "        raise RuntimeError('no disk')\n"
        "plugin = Broken(PluginMetadata(name='broken'))\n"
    )
    config = daemon.root / "logging.toml"
    config.write_text(daemon.config_path.read_text() + "max_connections = 1\n")
    log_file = daemon.root / "ksi.log"
    daemon.env["KSI_HOST__MAX_EMIT_DEPTH"] = "3"
    proc = daemon.start(
        *daemon.run_args(config),
        *("--plugin-path", str(broken)),
        *("--log-format", "json", "--log-file", str(log_file), "--log-level", "debug"),
        *("--trace-namespace", "test"),
        wait=False,
    )
    _wait_for(log_file, "ready: pid", proc)
    holder = socket.socket(socket.AF_UNIX)
    holder.connect(str(daemon.socket_path))
    refused = socket.socket(socket.AF_UNIX)
    refused.connect(str(daemon.socket_path))
    assert b"TOO_MANY_CONNECTIONS" in refused.makefile("rb").readline()
    refused.close()
    holder.close()
    time.sleep(0.2)
    _exchange(
        daemon.socket_path,
        {"event": "test:echo", "data": {"x": 1}, "correlation_id": "trace-1"},
        {"event": "system:health", "correlation_id": "health-1"},
        {"event": "test:loop", "correlation_id": "loop-1"},
    )
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    entries = _entries(log_file)

    running = {e["plugin"] for e in entries if e["message"].startswith("running ")}
    assert {"health", "state", "daemon_events", "unix_socket"} <= running
    failed = [e for e in entries if e["plugin"] == "broken" and e["level"] == "warning"]
    assert failed[0]["message"].startswith("not running broken: plugin 'broken' raised")
    assert any(
        e["message"] == "refused a connection: 1 connections are open (max_connections)"
        and e["level"] == "info"
        for e in entries
    )
    cut = [e for e in entries if e["message"].startswith("cut off 'test:loop'")]
    assert len(cut) == 1
    assert cut[0]["correlation_id"] == "loop-1"
    assert cut[0]["level"] == "info"

    traced = [e for e in entries if e["logger"] == "ksi_host.trace"]
    echo = [e for e in traced if e["correlation_id"] == "trace-1"]
    assert [(e.get("stage"), e.get("hook"), e["result"]) for e in echo] == [
        ("receive", None, ""),
        (None, "ksi_handle_event", "answer"),
        ("reply", None, "answer"),
    ]
    assert echo[1]["plugin"] == "daemon_events"
    assert echo[1]["event"] == "test:echo"
    assert echo[1]["duration_ms"] >= 0
    assert not [e for e in traced if e["event"] == "system:health"]  # not in --trace-namespace
    looped = [e for e in traced if e["correlation_id"] == "loop-1"]
    assert [e.get("stage") for e in looped].count("receive") == 4  # the request, 3 emits
    assert [(e["stage"], e["result"]) for e in looped if e.get("stage") == "emit"] == [
        ("emit", "error EMIT_TOO_DEEP")
    ]
    debug = [e for e in entries if e["logger"] == "ksi_host.dispatch" and e["level"] == "debug"]
    assert {e["correlation_id"] for e in debug} >= {"trace-1", "health-1", "loop-1"}


def test_a_log_file_that_cannot_be_written_is_a_clear_error(tmp_path, runner):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = runner.invoke(
        cli,
        ["run", "--log-file", str(blocker / "ksi.log"), "--socket", str(tmp_path / "s")],
    )
    assert result.exit_code == 1
    assert result.output.splitlines()[:2] == [
        f"error[config-error]: cannot write the log file: {blocker} is not a directory",
        f"  where: --log-file {blocker / 'ksi.log'}",
    ]
