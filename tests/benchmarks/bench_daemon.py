"""The daemon against a bare asyncio NDJSON echo server on the same machine, same client load.

Each server runs in its own process; the client load is the same for both: one
closed-loop client (latency p50/p99) and 32 concurrent closed-loop clients
(requests/s), sending ``system:health``. The daemon side is the real thing:
``python -m ksi_host run`` with every built-in plugin, in a tmp HOME/KSI_HOME.
Run it alone with ``python tests/benchmarks/bench_daemon.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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

asyncio.run(main())
"""
"""A bare asyncio NDJSON echo server, run in a fresh interpreter like the daemon."""


@contextlib.contextmanager
def _floor(run_dir: Path) -> Iterator[str]:
    path = str(run_dir / "ksi.sock")
    server = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SERVER, path], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor server did not start")
        yield path
    finally:
        server.terminate()
        server.wait()


@contextlib.contextmanager
def _daemon(run_dir: Path) -> Iterator[str]:
    """``ksi-host run`` with the built-ins, its home and socket in ``run_dir``."""
    path = run_dir / "ksi.sock"
    home = run_dir / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSI_", "XDG_"))}
    env.update(HOME=str(home), KSI_HOME=str(home / ".ksi"))
    log = run_dir / "daemon.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "ksi_host", "run", "--socket", str(path)],
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while "ready: pid" not in log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield str(path)
    finally:
        server.send_signal(signal.SIGTERM)
        if server.wait(timeout=30) != 0:
            raise RuntimeError(f"the daemon did not stop cleanly:\n{log.read_text()}")


async def _latencies(path: str) -> list[float]:
    reader, writer = await asyncio.open_unix_connection(path)
    samples = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        writer.write(REQUEST)
        await reader.readline()
        samples.append(time.perf_counter() - started)
    writer.close()
    return samples[LATENCY_REQUESTS // 10 :]


async def _throughput(path: str) -> float:
    deadline = time.perf_counter() + THROUGHPUT_SECONDS
    counts = [0] * CLIENTS

    async def client(index: int) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        while time.perf_counter() < deadline:
            writer.write(REQUEST)
            await reader.readline()
            counts[index] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return sum(counts) / (time.perf_counter() - started)


def _measure(kind: str, directory: Path) -> dict[str, float]:
    run_dir = directory / kind
    run_dir.mkdir(mode=0o700, parents=True)
    with (_floor if kind == "floor" else _daemon)(run_dir) as path:
        latencies = asyncio.run(_latencies(path))
        rate = asyncio.run(_throughput(path))
    ordered = sorted(latencies)
    return {
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
        "req_per_s": rate,
    }


def run() -> list[str]:
    """The daemon section: floor and daemon measured in alternating rounds."""
    directory = Path(tempfile.mkdtemp(prefix="ksi-bench-", dir="/tmp"))
    rounds: dict[str, list[dict[str, float]]] = {"floor": [], "daemon": []}
    try:
        for index in range(ROUNDS):
            for kind in ("floor", "daemon"):
                rounds[kind].append(_measure(kind, directory / str(index)))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    medians = {
        kind: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for kind, results in rounds.items()
    }
    floor = medians["floor"]
    rows = [
        (
            kind,
            f"{figures['p50_us']:.1f}",
            ratio(figures["p50_us"], floor["p50_us"]),
            f"{figures['p99_us']:.1f}",
            f"{figures['req_per_s']:.0f}",
            ratio(figures["req_per_s"], floor["req_per_s"]),
        )
        for kind, figures in medians.items()
    ]
    return section(
        "Daemon (`tests/benchmarks/bench_daemon.py`)",
        "`system:health` over the Unix socket against a bare asyncio streams server that only "
        "parses each line and writes a reply (the floor), each started in a fresh interpreter. "
        "Latency from one blocking client; throughput from "
        f"{CLIENTS} closed-loop clients multiplexed by one epoll loop. Median of {ROUNDS} "
        "alternating rounds.",
        table(
            [
                "server",
                "p50 µs",
                "p50 vs floor",
                "p99 µs",
                f"req/s ({CLIENTS} clients)",
                "req/s vs floor",
            ],
            rows,
        ),
    )


if __name__ == "__main__":
    print("\n".join(run()))
