"""The run loop: claim first, serve until a signal, drain, stop plugins, clean up."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from conftest import DAEMON_EVENTS, MODULES_PROBE, DaemonProcess, builtin_host, write_config

from ksi_host._client import request_sync
from ksi_host._config import load_config
from ksi_host._daemon import active_daemon, run_daemon
from ksi_host._instance import Instance
from ksi_host._server_config import ServerConfig
from ksi_host.errors import AlreadyRunning


def test_sigterm_drains_stops_plugins_and_removes_the_socket(sock_path, tmp_path):
    config = load_config(write_config(tmp_path / "ksi.toml", state=tmp_path / "s.db"), env={})
    host = builtin_host(config, tmp_path / "home", transport=True)
    stopped: list[str] = []

    async def stop() -> None:
        await host.stop()
        stopped.append("plugins")

    async def client() -> dict[str, object]:
        while active_daemon() is None or active_daemon().server is None:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_unix_connection(str(sock_path))
        writer.write(b'{"event": "test:sleep", "data": {"seconds": 0.3}, "correlation_id": 1}\n')
        await writer.drain()
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        reply = json.loads(await reader.readline())
        writer.close()
        return reply

    async def main() -> tuple[int, dict[str, object]]:
        config = ServerConfig(socket_path=sock_path)
        code, reply = await asyncio.gather(run_daemon(host.start, stop, config), client())
        return code, reply

    code, reply = asyncio.run(main())
    assert code == 0
    assert reply["data"] == {"slept": 0.3, "echo": {"seconds": 0.3}}
    assert stopped == ["plugins"]
    assert {status.status for status in host.status()} == {"stopped"}
    assert not sock_path.exists()
    assert not sock_path.with_name("ksi.sock.lock").exists()
    assert active_daemon() is None


def test_no_transport_means_exit_1_and_a_clean_stop(sock_path, caplog):
    calls: list[str] = []

    async def start() -> None:
        calls.append("start")

    async def stop() -> None:
        calls.append("stop")

    code = asyncio.run(run_daemon(start, stop, ServerConfig(socket_path=sock_path)))
    assert code == 1
    assert calls == ["start", "stop"]
    assert "no transport serves" in caplog.text
    assert not sock_path.exists()


def test_a_running_daemon_is_detected_before_any_plugin_starts(sock_path):
    holder = Instance.claim(sock_path)
    started: list[str] = []

    async def start() -> None:
        started.append("start")

    try:
        with pytest.raises(AlreadyRunning):
            asyncio.run(run_daemon(start, start, ServerConfig(socket_path=sock_path)))
    finally:
        holder.release()
    assert started == []


def test_a_failing_start_still_stops_and_cleans_up(sock_path):
    calls: list[str] = []

    async def start() -> None:
        raise RuntimeError("plugin exploded")

    async def stop() -> None:
        calls.append("stop")

    with pytest.raises(RuntimeError, match="exploded"):
        asyncio.run(run_daemon(start, stop, ServerConfig(socket_path=sock_path)))
    assert calls == ["stop"]
    assert not sock_path.exists()


@pytest.mark.slow
def test_sigterm_lets_an_inflight_request_finish_then_exits_0_and_cleans_up(daemon_factory):
    daemon = daemon_factory()
    proc = daemon.start()
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(daemon.socket_path))
        conn.sendall(b'{"event": "test:sleep", "data": {"seconds": 0.5}, "correlation_id": "d"}\n')
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        reply = json.loads(conn.makefile("rb").readline())
    assert reply["correlation_id"] == "d"
    assert reply["data"]["slept"] == 0.5
    assert proc.wait(timeout=10) == 0
    assert not daemon.socket_path.exists()
    assert not daemon.socket_path.with_name("ksi.sock.lock").exists()
    log = daemon.log()
    assert "received SIGTERM" in log
    assert log.rstrip().endswith("stopped")
    with pytest.raises(Exception, match="no ksi-host daemon is running"):
        request_sync(daemon.socket_path, "system:health")


@pytest.mark.slow
def test_the_log_says_where_the_daemon_listens_and_which_plugins_run(shared_daemon):
    log = shared_daemon.log()
    assert f"event loop: {'uvloop' if importlib.util.find_spec('uvloop') else 'asyncio'}" in log
    assert f"ready: pid {shared_daemon.proc.pid}, socket {shared_daemon.socket_path}" in log
    for name in ("health", "state", "history", "plugins", "metrics", "unix_socket", "websocket"):
        assert re.search(rf"running {name} \S+ from builtin ksi_plugins_builtin\.", log), name
    assert f"running daemon_events 1.0 from path {DAEMON_EVENTS}" in log
    assert "not running" not in log


@pytest.mark.slow
def test_send_system_health_answers(shared_daemon):
    done = shared_daemon.send("system:health")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "healthy"
    assert answer["plugins"] == {"total": 9, "running": 9}


@pytest.mark.slow
def test_send_plugin_list_shows_the_running_plan(shared_daemon):
    done = shared_daemon.send("plugin:list")
    assert done.returncode == 0, done.stderr
    plugins = {p["name"]: p for p in json.loads(done.stdout)["plugins"]}
    assert {p["status"] for p in plugins.values()} == {"running"}
    assert plugins["daemon_events"]["source"] == f"path {DAEMON_EVENTS}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("event", "code"),
    [("test:raise", "INTERNAL_ERROR"), ("nobody:home", "NO_HANDLER")],
)
def test_send_exits_1_on_an_error_reply(shared_daemon, event, code):
    done = shared_daemon.send(event)
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == code


@pytest.mark.slow
def test_a_bad_server_section_stops_run_before_it_claims_the_socket(short_dir):
    config = write_config(short_dir / "bad.toml", state=short_dir / "s.db", drain=-1)
    daemon = DaemonProcess(short_dir)
    done = daemon.cli(*daemon.run_args(config))
    assert done.returncode != 0
    assert "invalid socket settings: drain_timeout" in done.stderr
    assert f"[server] section of {config}" in done.stderr
    assert not daemon.socket_path.exists()


@pytest.mark.slow
def test_the_readme_commands_with_no_flags_use_the_users_own_dirs(short_dir):
    """``ksi-host run`` and ``ksi-host send`` bare, as a new user types them."""
    daemon = DaemonProcess(short_dir)
    ksi_home = Path(daemon.env["KSI_HOME"])
    proc = daemon.start("run")
    try:
        assert f"socket {ksi_home / 'run' / 'ksi.sock'}" in daemon.log()
        for args in (
            ("system:health",),
            ("state:set", "--data", '{"key": "greeting", "value": "hello"}'),
            ("state:get", "--data", '{"key": "greeting"}'),
        ):
            done = daemon.cli("send", *args)
            assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["value"] == "hello"
        assert (ksi_home / "data" / "state.sqlite3").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        daemon.stop()


@pytest.mark.slow
def test_run_and_send_find_the_socket_the_config_names(short_dir):
    """A socket set only in ``[server]`` is reached by ``send`` with that config, no --socket."""
    socket_path = short_dir / "elsewhere" / "k.sock"
    config = write_config(
        short_dir / "ksi.toml",
        state=short_dir / "s.db",
        extra=f"socket_path = {json.dumps(str(socket_path))}\n",
    )
    daemon = DaemonProcess(short_dir)
    daemon.env["KSI_CONFIG"] = str(config)
    proc = daemon.start("run")
    try:
        assert f"socket {socket_path}" in daemon.log()
        assert f"config {config}" in daemon.log()
        for env in ({}, {"KSI_CONFIG": ""}):
            args = ("--config", str(config)) if env else ()
            daemon.env.update(env)
            done = daemon.cli("send", "system:health", *args)
            assert done.returncode == 0, done.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        daemon.stop()
    assert not socket_path.exists()


@pytest.mark.slow
def test_ksi_server_socket_path_reaches_run_and_send_alike(short_dir):
    daemon = DaemonProcess(short_dir)
    socket_path = short_dir / "env" / "k.sock"
    daemon.env["KSI_SERVER__SOCKET_PATH"] = str(socket_path)
    proc = daemon.start("run")
    try:
        assert f"socket {socket_path}" in daemon.log()
        done = daemon.cli("send", "system:health")
        assert done.returncode == 0, done.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        daemon.stop()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_state_db_is_set_by_flag_or_ksi_state_db_and_logged(short_dir, how):
    daemon = DaemonProcess(short_dir)
    db = short_dir / "elsewhere" / "my.sqlite3"
    args = ["run", "--log-level", "warning"]
    if how == "flag":
        args += ["--state-db", str(db)]
    else:
        daemon.env["KSI_STATE_DB"] = str(db)
    proc = daemon.start(*args, wait=False)
    try:
        for _ in range(300):
            done = daemon.cli("send", "state:set", "--data", '{"key": "k", "value": 1}')
            if done.returncode == 0:
                break
            assert proc.poll() is None, daemon.log()
            time.sleep(0.1)
        assert done.returncode == 0, done.stderr
        assert db.is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        daemon.stop()
    assert " INFO " not in daemon.log(), "--log-level warning still logs INFO lines"


@pytest.mark.slow
def test_the_log_says_where_the_state_database_is(shared_daemon):
    assert f"state database {shared_daemon.root / 'state.db'}" in shared_daemon.log()


UNUSED_MACHINERY = (
    "ksi_host._isolation",
    "ksi_host._doctor.isolate",
    "ksi_host._wire",
    "ksi_host._schema",
)
"""What a daemon that isolates no plugin, and was asked nothing yet, has no use for:
the worker machinery, and the report models of ``plugin:list``."""


@pytest.mark.slow
def test_a_daemon_imports_no_machinery_its_plugins_do_not_use_and_collects_cycles(short_dir):
    daemon = DaemonProcess(short_dir)
    daemon.start(*daemon.run_args(), "--plugin-path", str(MODULES_PROBE))
    try:
        done = daemon.send("probe:modules", "--data", json.dumps({"names": UNUSED_MACHINERY}))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"loaded": []}
        # The cycle collector, paused for the start-up's imports, is on again.
        assert json.loads(daemon.send("probe:collector").stdout) == {"enabled": True}
    finally:
        daemon.stop()
