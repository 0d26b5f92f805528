"""The daemon under hostile clients and hard kills: a real ``ksi-host run`` subprocess each.

What once was measured by hand stays as tests: arbitrary bytes at a live daemon, clients
that vanish in every way a client can, a client that sends a byte a second, SIGKILL in the
middle of writes (nothing acknowledged is lost, nothing deleted comes back), and two
daemons racing for one home.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DaemonProcess, running_daemon
from hypothesis import HealthCheck, given, settings
from strategies import WIRE_LIMIT, replies_owed, strict_json, wire_stream

from ksi_host._client import request_sync
from ksi_host._limits import CONNECTIONS_WANTED

pytestmark = pytest.mark.slow

KILL_ROUNDS = 100
RACE_ROUNDS = 10


def open_fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def settle_fds(pid: int, baseline: int, timeout: float = 5.0) -> int:
    """The daemon's open descriptors once they are back to ``baseline`` (or the deadline)."""
    deadline = time.monotonic() + timeout
    while (count := open_fds(pid)) > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


def connect(path: Path, timeout: float = 10.0) -> socket.socket:
    """A blocking connect (it waits while the listen backlog is full), then reads with a timeout."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    sock.settimeout(timeout)
    return sock


def request_line(event: str, data: Any = None, correlation_id: Any = "1") -> bytes:
    message = {"event": event, "data": data or {}, "correlation_id": correlation_id}
    return json.dumps(message).encode() + b"\n"


def read_lines(sock: socket.socket, until_id: str) -> list[dict[str, Any]]:
    """Every reply line up to and including the one whose correlation id is ``until_id``."""
    replies: list[dict[str, Any]] = []
    with sock.makefile("rb") as stream:
        while True:
            line = stream.readline()
            assert line.endswith(b"\n"), f"closed before the reply to {until_id}: {replies}"
            replies.append(strict_json(line))
            if replies[-1].get("correlation_id") == until_id:
                return replies


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with running_daemon(f"max_line_bytes = {WIRE_LIMIT}\nidle_timeout = 30\n") as daemon:
        yield daemon


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(stream=wire_stream)
def test_any_bytes_at_a_live_daemon_get_one_reply_per_line_and_a_fresh_request_is_answered(
    daemon: DaemonProcess, stream: bytes
) -> None:
    owed, too_long = replies_owed(stream, WIRE_LIMIT)
    with connect(daemon.socket_path) as sock:
        sock.sendall(stream)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as replies:
            lines = replies.read().splitlines(keepends=True)
    assert len(lines) == owed, (stream[:200], lines)
    assert all(line.endswith(b"\n") for line in lines)
    parsed = [strict_json(line) for line in lines]
    assert all(isinstance(reply.get("data"), dict) for reply in parsed)
    if too_long:
        assert parsed[-1]["data"]["error"]["code"] == "LINE_TOO_LONG"
    with connect(daemon.socket_path) as sock:
        sock.sendall(request_line("test:echo", {"fresh": True}, "fresh"))
        assert read_lines(sock, "fresh")[-1]["data"] == {"echo": {"fresh": True}}


def _vanish_at_once(path: Path) -> None:
    connect(path).close()


def _vanish_mid_line(path: Path) -> None:
    with connect(path) as sock:
        sock.sendall(b'{"event": "test:ec')


def _vanish_before_the_reply(path: Path) -> None:
    with connect(path) as sock:
        sock.sendall(request_line("test:sleep", {"seconds": 0.2}))


def _vanish_with_a_reset(path: Path) -> None:
    sock = connect(path)
    sock.sendall(request_line("test:sleep", {"seconds": 0.2}) + b'{"event"')
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _vanish_killed(path: Path) -> None:
    """A client process SIGKILLed with a request in flight and half a line unsent."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        's.sendall(b\'{"event": "test:sleep", "data": {"seconds": 0.3}}\\n{"ev\')\n'
        "print('sent', flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "sent\n"
    child.kill()
    child.wait()


VANISHES = [
    _vanish_at_once,
    _vanish_mid_line,
    _vanish_before_the_reply,
    _vanish_with_a_reset,
    _vanish_killed,
]


@pytest.mark.parametrize("vanish", VANISHES, ids=lambda f: f.__name__.removeprefix("_vanish_"))
def test_a_client_that_vanishes_leaves_no_descriptor_behind(daemon, vanish):
    assert daemon.proc is not None
    pid = daemon.proc.pid
    assert request_sync(daemon.socket_path, "system:health")["status"] == "healthy"
    baseline = settle_fds(pid, open_fds(pid))
    for _ in range(10):
        vanish(daemon.socket_path)
    time.sleep(0.4)  # the in-flight test:sleep requests finish and find nobody to answer
    assert settle_fds(pid, baseline) <= baseline
    assert request_sync(daemon.socket_path, "system:health")["status"] == "healthy"


def test_a_byte_a_second_client_delays_nobody_and_is_answered_when_its_line_ends(daemon):
    line = request_line("test:echo", {"slow": True}, "slow")
    slow = connect(daemon.socket_path)
    stop = threading.Event()

    def dribble() -> None:
        for byte in line[:5]:
            if stop.wait(1.0):
                return
            slow.sendall(bytes([byte]))

    dribbler = threading.Thread(target=dribble)
    dribbler.start()
    try:
        answered = 0
        started = time.monotonic()
        with connect(daemon.socket_path) as fast:
            while dribbler.is_alive():
                fast.sendall(request_line("test:echo", {"n": answered}, str(answered)))
                before = time.monotonic()
                assert read_lines(fast, str(answered))[-1]["data"] == {"echo": {"n": answered}}
                assert time.monotonic() - before < 1.0
                answered += 1
        assert time.monotonic() - started >= 4.0
        assert answered > 10
    finally:
        stop.set()
        dribbler.join()
    slow.sendall(line[5:])
    assert read_lines(slow, "slow") == [
        {"event": "test:echo", "data": {"echo": {"slow": True}}, "correlation_id": "slow"}
    ]
    slow.close()


class Writer(threading.Thread):
    """Sets and deletes keys one request at a time, remembering what the daemon acknowledged."""

    def __init__(self, path: Path, prefix: str) -> None:
        super().__init__(daemon=True)
        self.path, self.prefix = path, prefix
        self.acked: dict[str, int] = {}
        self.deleted: set[str] = set()
        self.wrong: dict[str, Any] | None = None
        self.in_flight: str | None = None
        """A key whose delete was sent but not acknowledged: present or not, both are right."""

    def run(self) -> None:
        """Until the daemon dies: a dead connection ends the loop, a wrong reply is kept."""
        with contextlib.suppress(OSError), connect(self.path) as sock:
            stream = sock.makefile("rb")
            for n in range(1_000_000):
                key = f"{self.prefix}-{n}"
                deleting = n % 4 == 3
                target = f"{self.prefix}-{n - 2}" if deleting else key
                event = "state:delete" if deleting else "state:set"
                self.in_flight = target if deleting else None
                sock.sendall(request_line(event, {"key": target, "value": n}, str(n)))
                line = stream.readline()
                if not line.endswith(b"\n"):
                    return
                reply = json.loads(line)
                if reply["correlation_id"] != str(n) or "error" in reply["data"]:
                    self.wrong = reply
                    return
                if deleting:
                    self.acked.pop(target, None)
                    self.deleted.add(target)
                else:
                    self.acked[key] = n


def stored(db: Path) -> dict[str, Any]:
    """Open the database as the next daemon would (WAL recovery), check it, read every key."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {key: json.loads(value) for key, value in connection.execute("SELECT * FROM state")}


def test_sigkill_during_writes_loses_no_acknowledged_write_and_revives_no_delete(short_dir):
    daemon = DaemonProcess(short_dir, name="durability")
    db = short_dir / "state.db"
    rng = random.Random(16)
    acked: dict[str, int] = {}
    deleted: set[str] = set()
    total = 0
    for round_ in range(KILL_ROUNDS):
        proc = daemon.start()
        writer = Writer(daemon.socket_path, f"r{round_}")
        writer.start()
        time.sleep(rng.uniform(0.02, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        writer.join(timeout=10)
        assert not writer.is_alive()
        assert writer.wrong is None
        acked.update(writer.acked)
        if writer.in_flight is not None:
            acked.pop(writer.in_flight, None)
        deleted |= writer.deleted
        total += len(writer.acked) + len(writer.deleted)
        state = stored(db)
        lost = {key: value for key, value in acked.items() if state.get(key) != value}
        assert not lost, f"round {round_}: acknowledged writes lost: {sorted(lost)[:10]}"
        revived = deleted & state.keys()
        assert not revived, f"round {round_}: deleted keys came back: {sorted(revived)[:10]}"
    assert total > 0  # some rounds are killed before any write is answered (a loaded machine)


def test_two_daemons_racing_for_one_home_never_both_serve(short_dir):
    for round_ in range(RACE_ROUNDS):
        pair = [DaemonProcess(short_dir, name=f"race-{round_}-{side}") for side in "ab"]
        procs = [daemon.start(wait=False) for daemon in pair]
        try:
            deadline = time.monotonic() + 30
            while (
                time.monotonic() < deadline
                and not any("ready: pid" in d.log() for d in pair)
                and any(p.poll() is None for p in procs)
            ):
                time.sleep(0.02)
            serving = [d for d in pair if "ready: pid" in d.log()]
            assert len(serving) == 1, [d.log() for d in pair]
            loser = next(d for d in pair if d is not serving[0])
            assert loser.proc is not None
            assert loser.proc.wait(timeout=30) == 1
            assert "already running" in loser.log()
            health = request_sync(serving[0].socket_path, "system:health")
            assert health["status"] == "healthy"
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


def test_a_thousand_clients_at_once_are_all_answered_and_the_next_is_refused_cleanly(short_dir):
    daemon = DaemonProcess(short_dir, name="thousand")
    daemon.start(soft_files=256, wait=False)
    try:
        daemon.wait_ready()
        assert f"raised the open-files limit from 256 to {CONNECTIONS_WANTED + 64}" in daemon.log()
        clients = [connect(daemon.socket_path) for _ in range(CONNECTIONS_WANTED)]
        for index, sock in enumerate(clients):
            sock.sendall(request_line("test:echo", {"n": index}, f"c{index}"))
        for index, sock in enumerate(clients):
            [reply] = read_lines(sock, f"c{index}")
            assert reply["data"] == {"echo": {"n": index}}
        with connect(daemon.socket_path) as extra:
            extra.sendall(request_line("system:health", correlation_id="extra"))
            with extra.makefile("rb") as stream:
                refused = json.loads(stream.readline())
                assert stream.read() == b""  # a clean EOF, not a connection reset
        assert refused["data"]["error"]["code"] == "TOO_MANY_CONNECTIONS"
        for sock in clients:
            sock.close()
        assert settle_fds(daemon.proc.pid, 64, timeout=10) <= 64  # the closes are seen
        assert request_sync(daemon.socket_path, "system:health")["status"] == "healthy"
    finally:
        daemon.stop()


def test_the_default_connection_limit_follows_the_hard_open_files_limit():
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, 300))\n"
        "from ksi_host._server_config import ServerConfig\n"
        "from ksi_host._limits import reserve_files\n"
        "config = ServerConfig.from_section({}, where='[server]')\n"
        "print(config.max_connections, reserve_files({'unix_socket': config.max_connections}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["236", "300"]


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
        * 1024
    )


@pytest.fixture(scope="module")
def default_daemon() -> Iterator[DaemonProcess]:
    """A daemon with every default limit (1 MiB lines, 4 MiB reply budget, 4 MiB history)."""
    with running_daemon() as daemon:
        yield daemon


def test_clients_that_never_read_large_replies_grow_the_daemon_only_by_the_documented_bound(
    default_daemon,
):
    """4 connections ask for 1 MB replies and never read: each holds at most its budget."""
    daemon = default_daemon
    assert daemon.proc is not None
    value = "x" * 1_000_000
    done = request_sync(daemon.socket_path, "state:set", {"key": "big", "value": value})
    assert done["status"] == "set"
    for _ in range(3):  # the first large replies warm up the allocator
        assert request_sync(daemon.socket_path, "state:get", {"key": "big"})["found"]
    before = rss_bytes(daemon.proc.pid)
    request = request_line("state:get", {"key": "big"})
    hoarders = [connect(daemon.socket_path) for _ in range(4)]
    for sock in hoarders:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in range(300):
                sock.send(request)
    time.sleep(3)
    grown = rss_bytes(daemon.proc.pid) - before
    # docs/PROTOCOL.md: an unread request line, the reply budget, and the replies of the
    # requests already in flight when the budget ran out (max_inflight of them, each held
    # as the answer and as its encoded line while it is written).
    per_connection = 2**20 + 4 * 2**20 + 32 * 2 * (len(value) + 100)
    assert grown < 4 * per_connection, f"grew {grown / 2**20:.0f} MiB"
    assert request_sync(daemon.socket_path, "system:health")["status"] == "healthy"
    for sock in hoarders:
        sock.close()


def test_the_history_keeps_large_events_as_summaries_within_its_byte_budget(default_daemon):
    daemon = default_daemon
    assert daemon.proc is not None
    payload = {"blob": "h" * 1_000_000}
    with connect(daemon.socket_path) as sock:
        sock.sendall(request_line("test:echo", payload, "warm"))
        read_lines(sock, "warm")
        before = rss_bytes(daemon.proc.pid)
        for n in range(100):
            sock.sendall(request_line("test:echo", payload, str(n)))
            assert read_lines(sock, str(n))[-1]["data"]["echo"] == payload
    grown = rss_bytes(daemon.proc.pid) - before
    assert grown < 4 * 2**20 + 16 * 2**20, f"grew {grown / 2**20:.0f} MiB for 100 MB of events"
    history = request_sync(daemon.socket_path, "system:history", {"namespace": "test"})
    entry = history["events"][-1]["data"]
    assert entry["truncated"] is True
    assert entry["keys"] == ["blob"]
    assert entry["bytes"] >= 1_000_000
