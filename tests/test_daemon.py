"""The run loop: claim first, serve until a signal, drain, stop plugins, clean up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time

import pytest
from minihost import MiniHost, builtin_plugins

from ksi_host._client import request_sync
from ksi_host._daemon import active_daemon, run_daemon
from ksi_host._instance import AlreadyRunning, Instance
from ksi_host._server import ServerConfig


def test_sigterm_drains_stops_plugins_and_removes_the_socket(sock_path, tmp_path):
    host = MiniHost(builtin_plugins(), {"state": {"path": str(tmp_path / "s.db")}})
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
def test_a_daemon_process_answers_and_exits_0_on_sigterm_after_draining(daemon_factory):
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
    assert "received SIGTERM" in proc.stderr.read()
    with pytest.raises(Exception, match="no ksi-host daemon is running"):
        request_sync(daemon.socket_path, "system:health")
