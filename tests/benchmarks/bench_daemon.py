"""The daemon against bare NDJSON echo servers on the same machine, same client load.

Each server runs in its own fresh interpreter. The floor is a bare asyncio streams
server that only parses each line and writes a reply; the same server on uvloop shows
how close the daemon gets to the best loop. The daemon is the real thing: ``python -m
ksi_host run`` with every built-in plugin (validation, the filter → validate → handle
pipeline, history, metrics), on uvloop (its default) and on asyncio's loop, and over
WebSocket. The load generator is lighter than any server: latency from one blocking
client, throughput from ``CLIENTS`` closed-loop connections multiplexed by one epoll
loop with the request pre-encoded. Run it alone with
``python tests/benchmarks/bench_daemon.py``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from report import ratio, section, table

REQUEST = b'{"event": "system:health", "data": {}, "correlation_id": "1"}\n'
LATENCY_REQUESTS = 3000
CLIENTS = 32
THROUGHPUT_SECONDS = 2.0
ROUNDS = 5

FLOOR_SERVER = """
import asyncio, json, sys

async def handle(reader, writer):
    while line := await reader.readline():
        message = json.loads(line)
        reply = {"event": message["event"], "correlation_id": message["correlation_id"]}
        reply["data"] = message["data"]
        writer.write(json.dumps(reply).encode() + b"\\n")
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_unix_server(handle, path=sys.argv[1], backlog=256)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""
"""A bare NDJSON echo server on asyncio streams, on the loop named by its second argument."""


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens: a Unix socket path, or a WebSocket host/port and token."""

    pid: int
    path: str | None = None
    host: str = ""
    port: int = 0
    token: str = ""


@contextlib.contextmanager
def _floor(run_dir: Path, loop: str) -> Iterator[Endpoint]:
    path = str(run_dir / "ksi.sock")
    server = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SERVER, path, loop], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor server did not start")
        yield Endpoint(server.pid, path=path)
    finally:
        server.terminate()
        server.wait()


@contextlib.contextmanager
def _daemon(run_dir: Path, loop: str, websocket: bool = False) -> Iterator[Endpoint]:
    """``ksi-host run`` with the built-ins, its home and socket in ``run_dir``."""
    path = run_dir / "ksi.sock"
    home = run_dir / "home"
    config = run_dir / "ksi.toml"
    config.write_text("[websocket]\nenabled = true\nport = 0\n" if websocket else "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSI_", "XDG_"))}
    env.update(HOME=str(home), KSI_HOME=str(home / ".ksi"))
    log = run_dir / "daemon.log"
    command = [sys.executable, "-m", "ksi_host", "run", "--socket", str(path)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--config", str(config), "--loop", loop], stdout=out, stderr=out, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while "ready: pid" not in log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start:\n{log.read_text()}")
            time.sleep(0.05)
        if not websocket:
            yield Endpoint(server.pid, path=str(path))
        else:
            found = re.search(r"listening on ws://([\d.]+):(\d+)", log.read_text())
            assert found, log.read_text()
            token = (home / ".ksi" / "run" / "websocket.token").read_text().strip()
            yield Endpoint(server.pid, host=found.group(1), port=int(found.group(2)), token=token)
    finally:
        server.send_signal(signal.SIGTERM)
        if server.wait(timeout=30) != 0:
            raise RuntimeError(f"the daemon did not stop cleanly:\n{log.read_text()}")


# --- the wire: NDJSON lines, or WebSocket frames ---


def _ws_frame(payload: bytes) -> bytes:
    """A masked client text frame (RFC 6455 §5.2) carrying ``payload``, encoded once."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def _ws_frames_done(buffer: bytearray) -> int:
    """Remove the complete server frames at the front of ``buffer``; return how many."""
    done = offset = 0
    while len(buffer) - offset >= 2:
        length = buffer[offset + 1] & 0x7F
        header = 2
        if length == 126:
            if len(buffer) - offset < 4:
                break
            length, header = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), 4
        elif length == 127:
            if len(buffer) - offset < 10:
                break
            length, header = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), 10
        if len(buffer) - offset < header + length:
            break
        offset += header + length
        done += 1
    del buffer[:offset]
    return done


def _lines_done(buffer: bytearray) -> int:
    done = buffer.count(b"\n")
    if done:
        del buffer[: buffer.rindex(b"\n") + 1]
    return done


@dataclass(frozen=True)
class Wire:
    request: bytes
    replies_done: Callable[[bytearray], int]
    connect: Callable[[Endpoint], socket.socket]


def _connect_unix(endpoint: Endpoint) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    assert endpoint.path is not None
    sock.connect(endpoint.path)
    return sock


def _connect_websocket(endpoint: Endpoint) -> socket.socket:
    sock = socket.create_connection((endpoint.host, endpoint.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: {endpoint.host}:{endpoint.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {endpoint.token}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    if not response.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the WebSocket handshake failed: {response!r}")
    return sock


NDJSON = Wire(REQUEST, _lines_done, _connect_unix)
WEBSOCKET = Wire(_ws_frame(REQUEST.rstrip(b"\n")), _ws_frames_done, _connect_websocket)


def _latencies(endpoint: Endpoint, wire: Wire) -> list[float]:
    """One blocking client: send, wait for the whole reply, again."""
    sock = wire.connect(endpoint)
    buffer = bytearray()
    samples = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        sock.sendall(wire.request)
        while not wire.replies_done(buffer):
            buffer += sock.recv(65536)
        samples.append(time.perf_counter() - started)
    sock.close()
    return samples[LATENCY_REQUESTS // 10 :]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _throughput(endpoint: Endpoint, wire: Wire) -> tuple[float, float]:
    """``CLIENTS`` closed-loop connections, one epoll loop, each sends again once answered.

    Returns requests per second, and the server's CPU microseconds per request: on a
    machine whose cores are shared, the second does not depend on how much of a core
    the scheduler happened to give the server.
    """
    socks = [wire.connect(endpoint) for _ in range(CLIENTS)]
    buffers = {sock.fileno(): (sock, bytearray()) for sock in socks}
    poller = select.epoll()
    for sock in socks:
        sock.setblocking(False)
        poller.register(sock.fileno(), select.EPOLLIN)
    answered = 0
    cpu_before = _cpu_seconds(endpoint.pid)
    started = time.perf_counter()
    deadline = started + THROUGHPUT_SECONDS
    for sock in socks:
        sock.send(wire.request)
    while time.perf_counter() < deadline:
        for fd, _event in poller.poll(0.1):
            sock, buffer = buffers[fd]
            buffer += sock.recv(65536)
            done = wire.replies_done(buffer)
            if done:
                answered += done
                sock.send(wire.request)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(endpoint.pid) - cpu_before
    poller.close()
    for sock in socks:
        sock.close()
    return answered / elapsed, cpu * 1e6 / answered


# --- the rows ---

KINDS: dict[
    str, tuple[str, Callable[[Path], contextlib.AbstractContextManager[Endpoint]], Wire]
] = {
    "floor": ("bare asyncio streams (floor)", lambda d: _floor(d, "asyncio"), NDJSON),
    "floor_uvloop": ("bare asyncio streams on uvloop", lambda d: _floor(d, "uvloop"), NDJSON),
    "daemon": ("ksi-host run (uvloop, the default)", lambda d: _daemon(d, "uvloop"), NDJSON),
    "daemon_asyncio": ("ksi-host run --loop asyncio", lambda d: _daemon(d, "asyncio"), NDJSON),
    "websocket": (
        "ksi-host run, over WebSocket",
        lambda d: _daemon(d, "uvloop", websocket=True),
        WEBSOCKET,
    ),
}


def _measure(kind: str, directory: Path) -> dict[str, float]:
    run_dir = directory / kind
    run_dir.mkdir(mode=0o700, parents=True)
    _label, server, wire = KINDS[kind]
    with server(run_dir) as endpoint:
        latencies = _latencies(endpoint, wire)
        rate, cpu_us = _throughput(endpoint, wire)
    ordered = sorted(latencies)
    return {
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
        "req_per_s": rate,
        "cpu_us": cpu_us,
    }


def measure(
    kinds: tuple[str, ...] = tuple(KINDS), rounds: int = ROUNDS
) -> dict[str, dict[str, float]]:
    """Medians of ``rounds`` alternating rounds of every kind."""
    directory = Path(tempfile.mkdtemp(prefix="ksi-bench-", dir="/tmp"))
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    try:
        for index in range(rounds):
            for kind in kinds:
                results[kind].append(_measure(kind, directory / str(index)))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        kind: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for kind, runs in results.items()
    }


def run() -> list[str]:
    """The daemon section: every server measured in alternating rounds."""
    medians = measure()
    floor = medians["floor"]
    rows = [
        (
            KINDS[kind][0],
            f"{figures['p50_us']:.1f}",
            ratio(figures["p50_us"], floor["p50_us"]),
            f"{figures['p99_us']:.1f}",
            f"{figures['req_per_s']:.0f}",
            ratio(figures["req_per_s"], floor["req_per_s"]),
            f"{figures['cpu_us']:.1f}",
            ratio(figures["cpu_us"], floor["cpu_us"]),
        )
        for kind, figures in medians.items()
    ]
    return section(
        "Daemon (`tests/benchmarks/bench_daemon.py`)",
        "`system:health` against a bare asyncio streams server that only parses each line and "
        "writes a reply (the floor), the same server on uvloop, and the daemon (every request "
        "validated and dispatched through the built-ins) over the Unix socket on each loop and "
        "over WebSocket, each started in a fresh interpreter. Latency from one blocking "
        f"client; throughput from {CLIENTS} closed-loop clients multiplexed by one epoll loop, "
        f"requests pre-encoded, with the server's CPU time per request during that load (from "
        "/proc: unlike req/s, it does not depend on how much of a shared core the server "
        f"got). Median of {ROUNDS} alternating rounds. Targets: the daemon's req/s at least "
        "1.0x the floor's, its p50 at most 1.0x.",
        table(
            [
                "server",
                "p50 µs",
                "p50 vs floor",
                "p99 µs",
                f"req/s ({CLIENTS} clients)",
                "req/s vs floor",
                "server CPU µs/req",
                "CPU/req vs floor",
            ],
            rows,
        ),
    )


if __name__ == "__main__":
    print("\n".join(run()))
