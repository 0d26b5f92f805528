"""Every error case of the protocol, against the real ``ksi-host run`` in a subprocess.

One daemon with small limits serves the module: 4 KiB lines, 3 connections, 2 requests
in flight per connection, 1.5 s idle timeout.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DaemonProcess, connect_as_uid, error_code, running_daemon

pytestmark = pytest.mark.slow

LIMITS = "max_line_bytes = 4096\nmax_connections = 3\nmax_inflight = 2\nidle_timeout = 1.5\n"


class Conn:
    """A blocking NDJSON connection to the daemon."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def request(self, event: str, data: Any = None, correlation_id: Any = "1") -> None:
        message = {"event": event, "data": data or {}, "correlation_id": correlation_id}
        self.send(json.dumps(message).encode() + b"\n")

    def reply(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line.endswith(b"\n"), f"connection closed instead of a reply: {line!r}"
        return json.loads(line)  # type: ignore[no-any-return]

    def at_eof(self) -> bool:
        try:
            return self.file.read() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with running_daemon(LIMITS) as daemon:
        yield daemon


@pytest.fixture
def conn(daemon: DaemonProcess) -> Iterator[Conn]:
    connection = Conn(daemon.socket_path)
    yield connection
    connection.close()


def dispatched(daemon: DaemonProcess, marker: str) -> list[dict[str, Any]]:
    """The events in the daemon's history whose data carries ``marker``."""
    connection = Conn(daemon.socket_path)
    try:
        connection.request("system:history", {"limit": 1000})
        events = connection.reply()["data"]["events"]
    finally:
        connection.close()
    return [e for e in events if marker in json.dumps(e)]


@pytest.mark.parametrize(
    ("line", "code", "fragment"),
    [
        (b'{"event": "test:echo"', "INVALID_JSON", "not JSON"),
        (b'\xff{"event": "test:echo"}', "INVALID_ENCODING", "not UTF-8"),
        (b'["test:echo"]', "NOT_AN_OBJECT", "JSON object"),
        (b'{"data": {}, "correlation_id": "9"}', "INVALID_REQUEST", "'event' is missing"),
        (b'{"event": "test:echo", "data": 5}', "INVALID_REQUEST", "'data' must be"),
        (b'{"event": "test:echo", "colour": 1}', "INVALID_REQUEST", "unknown field 'colour'"),
        (b'{"event": "Test:Echo"}', "INVALID_EVENT_NAME", "Test:Echo"),
        (b'{"event": "nobody:home"}', "NO_HANDLER", "nobody:home"),
        (b'{"event": "test:raise"}', "INTERNAL_ERROR", "'daemon_events' failed"),
        (b'{"event": "state:set", "data": {"value": 1}}', "INVALID_INPUT", "'key'"),
    ],
)
def test_a_bad_request_gets_an_error_reply_and_the_connection_stays_usable(
    conn, line, code, fragment
):
    conn.send(line + b"\n")
    reply = conn.reply()
    assert reply["data"]["status"] == "error"
    assert error_code(reply["data"]) == code
    assert fragment in reply["data"]["error"]["message"]
    conn.request("test:echo", {"after": code}, correlation_id="next")
    after = conn.reply()
    assert (after["correlation_id"], after["data"]) == ("next", {"echo": {"after": code}})


def test_an_over_long_line_is_answered_then_closed_and_nothing_of_it_is_dispatched(daemon, conn):
    marker = uuid.uuid4().hex
    smuggled = json.dumps({"event": "test:echo", "data": {"m": marker}}).encode()
    # Valid requests hidden past the limit, inside the long line and after it.
    conn.send(b'{"event": "test:echo", "data": {"pad": "' + b"x" * 5000 + b"\n" + smuggled + b"\n")
    reply = conn.reply()
    assert error_code(reply["data"]) == "LINE_TOO_LONG"
    assert "4096 bytes" in reply["data"]["error"]["message"]
    assert conn.at_eof()
    assert dispatched(daemon, marker) == []


def test_the_connection_past_max_connections_gets_an_error_reply(daemon):
    held = [Conn(daemon.socket_path) for _ in range(3)]
    try:
        for n, connection in enumerate(held):
            connection.request("test:echo", correlation_id=n)
            assert connection.reply()["correlation_id"] == n
        extra = Conn(daemon.socket_path)
        reply = extra.reply()
        assert error_code(reply["data"]) == "TOO_MANY_CONNECTIONS"
        assert "max_connections" in reply["data"]["error"]["message"]
        assert extra.at_eof()
        extra.close()
    finally:
        for connection in held:
            connection.close()
        wait_until_only_one_connection(daemon)


def wait_until_only_one_connection(daemon: DaemonProcess) -> None:
    """Wait until the daemon has seen the closes, so the next test's connection is admitted."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = Conn(daemon.socket_path)
        try:
            probe.request("system:metrics")
            data = probe.reply()["data"]
        finally:
            probe.close()
        if error_code(data) is None and data["metrics"]["unix_socket"]["connections_open"] == 1:
            return
        time.sleep(0.05)
    raise AssertionError("the daemon still counts the closed connections")


def test_max_inflight_holds_back_requests_and_answers_all_out_of_order(conn):
    started = time.monotonic()
    for n in range(5):
        conn.request("test:sleep", {"seconds": 0.3}, correlation_id=n)
    conn.request("test:echo", correlation_id="fast")
    replies = [conn.reply() for _ in range(6)]
    elapsed = time.monotonic() - started
    assert sorted(map(str, (r["correlation_id"] for r in replies))) == [*"01234", "fast"]
    # Two at a time: three waves of 0.3 s; without the limit all five would take 0.3 s.
    assert elapsed >= 0.85, elapsed
    assert replies[0]["correlation_id"] in (0, 1)


def test_out_of_order_replies_are_matched_by_id(conn):
    conn.request("test:sleep", {"seconds": 0.4}, correlation_id="slow")
    conn.request("test:echo", {"n": 1}, correlation_id="fast")
    assert [conn.reply()["correlation_id"] for _ in range(2)] == ["fast", "slow"]


def test_an_idle_connection_is_told_and_closed(conn):
    started = time.monotonic()
    reply = conn.reply()
    assert error_code(reply["data"]) == "IDLE_TIMEOUT"
    assert 1.0 <= time.monotonic() - started < 5
    assert conn.at_eof()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_a_peer_with_another_uid_is_refused(daemon):
    marker = uuid.uuid4().hex
    run_dir = daemon.socket_path.parent
    modes = [(p, p.stat().st_mode) for p in (daemon.root, run_dir, daemon.socket_path)]
    # Loosen what the daemon set up, so only SO_PEERCRED stands in the way.
    daemon.root.chmod(0o711)
    run_dir.chmod(0o711)
    daemon.socket_path.chmod(0o666)
    try:
        line = connect_as_uid(
            65534,
            daemon.socket_path,
            json.dumps({"event": "test:echo", "data": {"m": marker}}).encode() + b"\n",
        )
    finally:
        for path, mode in modes:
            path.chmod(mode)
    reply = json.loads(line)
    assert error_code(reply["data"]) == "PEER_REFUSED"
    assert "not uid 65534" in reply["data"]["error"]["message"]
    assert dispatched(daemon, marker) == []
