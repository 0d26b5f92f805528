"""Shared fixtures; also turns pytest's "no tests ran" (exit 5) into a failure."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --- daemon ---

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ksi_host._client import request_sync  # noqa: E402

MINIHOST = Path(__file__).with_name("minihost.py")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A private dir under /tmp: AF_UNIX paths must stay under 108 bytes, tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(short_dir: Path) -> Path:
    return short_dir / "run" / "ksi.sock"


@pytest.fixture
def ksi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and KSI_HOME at tmp dirs so nothing touches the real home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KSI_HOME", str(home / ".ksi"))
    monkeypatch.delenv("KSI_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return home / ".ksi"


class LineClient:
    """A raw NDJSON connection for tests: send lines, read replies as dicts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path) -> LineClient:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024)
        return cls(reader, writer)

    async def send_raw(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def send(self, event: str, data: Any = None, correlation_id: Any = "1") -> None:
        message: dict[str, Any] = {"event": event, "correlation_id": correlation_id}
        if data is not None:
            message["data"] = data
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def reply(self, timeout: float = 5.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        assert line.endswith(b"\n"), f"connection closed instead of a reply: {line!r}"
        return json.loads(line)  # type: ignore[no-any-return]

    async def at_eof(self, timeout: float = 5.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def error_code(answer: dict[str, Any]) -> str | None:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None


class DaemonProcess:
    """``tests/minihost.py`` run as a daemon in a subprocess, on a real socket."""

    def __init__(self, socket_path: Path, state_path: Path, drain: float = 5.0) -> None:
        self.socket_path = socket_path
        self.state_path = state_path
        self.drain = drain
        self.proc: subprocess.Popen[str] | None = None

    def start(self, wait: bool = True) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(MINIHOST),
                str(self.socket_path),
                str(self.state_path),
                str(self.drain),
            ],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        if wait:
            self.wait_ready()
        return self.proc

    def wait_ready(self, timeout: float = 15.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if (
                    request_sync(self.socket_path, "system:health", timeout=1)["status"]
                    == "healthy"
                ):
                    return
            except Exception:
                time.sleep(0.05)
        raise AssertionError("daemon did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon_factory(short_dir: Path) -> Iterator[Any]:
    """Start minihost daemons on a socket in ``short_dir``; kills leftovers at the end."""
    started: list[DaemonProcess] = []

    def make(drain: float = 5.0) -> DaemonProcess:
        daemon = DaemonProcess(short_dir / "run" / "ksi.sock", short_dir / "state.db", drain)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()
