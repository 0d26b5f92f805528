"""A daemon with faulty plugins beside a healthy one, and a prober that times the healthy one.

Shared by the containment tests (in-process and isolated plugins): every case runs
against a real ``ksi-host run`` subprocess while a thread asks the healthy plugin
(``test:echo`` of ``DAEMON_EVENTS``) for an answer every 50 ms, and ends with
SIGTERM, which must exit 0 within its deadline and remove the socket and the lock.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import DaemonProcess, write_config

FAULTY = """
import asyncio, os, time
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl

NAME = {name!r}


class Faulty(BasePlugin):
    @hookimpl
    def ksi_startup(self):
        {startup}

    @hookimpl
    def ksi_shutdown(self):
        {shutdown}

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        action = event_name.partition(":")[2]
        if action == "ping":
            return {{"pong": NAME, "pid": os.getpid()}}
        if action == "sleep":
            time.sleep(1000)
        if action == "spin":
            while True:
                pass
        if action == "await":
            return asyncio.Event().wait()
        if action == "emitloop":
            return self.emit_forever(context)
        if action == "segv":
            os.kill(os.getpid(), 11)
        if action == "exit":
            os._exit(3)
        if action == "emit":
            return self.emit_one(context, data)
        if action == "hog":
            return {{"size": len(bytearray(data["mb"] * 1024 * 1024))}}
        return None

    async def emit_forever(self, context):
        while True:
            await context.emit(NAME + ":ping", {{}})

    async def emit_one(self, context, data):
        return {{"answer": await context.emit(data["event"], data.get("data", {{}}))}}


plugin = Faulty(
    PluginMetadata(name=NAME, version="1.0"),
    PluginCapabilities(event_namespaces=[NAME]),
)
"""

STALL = {
    "sleep": "time.sleep(1000)",
    "spin": "while True: pass",
    "await": "return asyncio.Event().wait()",
    "none": "return None",
}


def faulty_plugin(
    folder: Path, name: str, *, startup: str = "none", shutdown: str = "none"
) -> Path:
    """A plugin file ``name.py`` whose ``name:ACTION`` events misbehave as ACTION says."""
    path = folder / f"{name}.py"
    path.write_text(FAULTY.format(name=name, startup=STALL[startup], shutdown=STALL[shutdown]))
    return path


def ask(sock: Path, event: str, data: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    """One request on a fresh connection; the reply's data."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock))
        message = {"event": event, "data": data or {}, "correlation_id": "1"}
        conn.sendall(json.dumps(message).encode() + b"\n")
        line = conn.makefile("rb").readline()
    return json.loads(line)["data"]


class Prober:
    """Asks the healthy plugin every 50 ms; keeps the slowest answer and any failure."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.slowest = 0.0
        self.failures: list[str] = []
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            start = time.monotonic()
            try:
                answer = ask(self.sock, "test:echo", {"n": self.answers}, timeout=5)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            self.slowest = max(self.slowest, time.monotonic() - start)
            if answer != {"echo": {"n": self.answers}}:
                self.failures.append(repr(answer))
            self.answers += 1

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 5
        while self.answers < 3 and not self.failures and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """The healthy plugin answered, every time, within 1 s."""
        assert self.answers > 0
        assert not self.failures, self.failures
        assert self.slowest < 1.0, f"the healthy plugin took {self.slowest:.2f} s"


HOST_SETTINGS = """
[host]
plugin_paths = {paths}
watchdog_threshold = 0.2
startup_timeout = 1.5
shutdown_timeout = 1.5
stop_grace = {grace}
{more}
"""


@contextmanager
def contained_daemon(
    plugins: dict[str, dict[str, str]],
    host: str = "",
    drain: float = 1.0,
    files: dict[str, str] | None = None,
    grace: float = 8.0,
) -> Iterator[DaemonProcess]:
    """A daemon with ``faulty_plugin(name, **options)`` for each entry, ``files`` and
    DAEMON_EVENTS; not started."""
    root = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    folder = root / "plugins"
    folder.mkdir()
    paths = [str(faulty_plugin(folder, name, **options)) for name, options in plugins.items()]
    for file_name, source in (files or {}).items():
        (folder / file_name).write_text(source)
        paths.append(str(folder / file_name))
    extra = HOST_SETTINGS.format(paths=json.dumps(paths), more=host, grace=grace)
    write_config(root / "ksi.toml", state=root / "state.db", drain=drain, extra=extra)
    daemon = DaemonProcess(root)
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def stop_cleanly(daemon: DaemonProcess, deadline: float) -> None:
    """SIGTERM: exit 0 within ``deadline`` seconds, socket and lock gone."""
    assert daemon.proc is not None
    start = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(deadline + 5)
    took = time.monotonic() - start
    assert code == 0, daemon.log()
    assert took < deadline, f"stopping took {took:.1f} s:\n{daemon.log()}"
    assert not daemon.socket_path.exists()
    assert not daemon.socket_path.with_name("ksi.sock.lock").exists()
