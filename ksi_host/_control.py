"""``ksi-host status`` and ``ksi-host stop``: find the daemon on a socket, ask it, stop it.

Whether a daemon runs is decided by its pid lock (see :mod:`ksi_host._instance`), not
by the socket file, which a killed daemon leaves behind. Before signalling a pid,
``stop`` checks that it is a ksi-host daemon: the process that listens on the
socket must be the one that holds the lock, and its command line must be ksi-host's.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from ksi_host._client import request_sync
from ksi_host._defaults import STOP_TIMEOUT
from ksi_host._instance import lock_holder, peer_pid
from ksi_host.errors import DaemonNotRunning, KsiError, NotKsiHost, StopTimeout

__all__ = [
    "NOT_RUNNING_EXIT",
    "DaemonStatus",
    "daemon_status",
    "render_status",
    "stop_daemon",
]

NOT_RUNNING_EXIT: Final = 3
"""``systemctl status``'s code for "not running"."""
_ASK_TIMEOUT: Final = 5.0
_POLL: Final = 0.05
_PROGRAM_NAMES: Final = frozenset({"ksi-host", "ksi_host"})


class DaemonStatus(BaseModel):
    """What ``ksi-host status --json`` prints."""

    model_config = ConfigDict(frozen=True)

    running: bool
    socket: str
    pid: int | None = None
    version: str | None = None
    uptime: float | None = None
    plugins: dict[str, int] | None = None
    health: str | None = None
    failed: list[str] = []
    problem: str | None = None


def daemon_status(socket_path: Path, timeout: float = _ASK_TIMEOUT) -> DaemonStatus:
    """Whether a daemon holds ``socket_path``; if so, what its ``system:health`` says."""
    pid = lock_holder(socket_path)
    if pid is None:
        stale = socket_path.exists()
        return DaemonStatus(
            running=False,
            socket=str(socket_path),
            problem="a socket file left by a daemon that did not stop cleanly is in the way "
            "(the next ksi-host run replaces it)"
            if stale
            else None,
        )
    try:
        health = request_sync(socket_path, "system:health", timeout=timeout)
    except DaemonNotRunning:
        return DaemonStatus(
            running=True,
            socket=str(socket_path),
            pid=pid or None,
            problem="it holds the socket's lock but does not listen on the socket (yet)",
        )
    except KsiError as exc:
        return DaemonStatus(
            running=True, socket=str(socket_path), pid=pid or None, problem=exc.what
        )
    return _from_health(socket_path, pid, health)


def _from_health(socket_path: Path, pid: int, health: dict[str, Any]) -> DaemonStatus:
    error = health.get("error")
    if health.get("status") == "error" or "uptime" not in health:
        message = error.get("message") if isinstance(error, dict) else None
        return DaemonStatus(
            running=True,
            socket=str(socket_path),
            pid=pid or None,
            problem=f"system:health did not answer: {message or health}",
        )
    plugins = health.get("plugins")
    failed = health.get("failed")
    return DaemonStatus(
        running=True,
        socket=str(socket_path),
        pid=health.get("pid") or pid or None,
        version=health.get("version"),
        uptime=health.get("uptime"),
        plugins=plugins if isinstance(plugins, dict) else None,
        health=health.get("status"),
        failed=[str(name) for name in failed] if isinstance(failed, list) else [],
    )


def render_status(status: DaemonStatus) -> str:
    """``systemctl status``-like lines: a headline, then one ``name: value`` per fact."""
    if not status.running:
        lines = ["ksi-host is not running", f"  socket:  {status.socket}"]
    else:
        health = f", {status.health}" if status.health and status.health != "healthy" else ""
        lines = [
            f"ksi-host is running (pid {status.pid or 'unknown'}{health})",
            f"  socket:  {status.socket}",
        ]
        if status.version is not None:
            lines.append(f"  version: {status.version}")
        if status.uptime is not None:
            lines.append(f"  uptime:  {_duration(status.uptime)}")
        if status.plugins is not None:
            counts = {k: v for k, v in status.plugins.items() if k != "total"}
            shown = ", ".join(f"{count} {state}" for state, count in counts.items())
            lines.append(f"  plugins: {status.plugins.get('total', 0)} ({shown})")
        if status.failed:
            lines.append(f"  failed:  {', '.join(status.failed)} (see ksi-host plugins)")
    if status.problem is not None:
        lines.append(f"  note:    {status.problem}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join([*shown, f"{secs}s"])


def stop_daemon(socket_path: Path, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM the daemon on ``socket_path`` and wait until its lock is free.

    Returns the pid that stopped, or None when no daemon was running. Raises
    :class:`NotKsiHost` rather than signal a process that is not provably ours,
    and :class:`StopTimeout` when it still runs after ``timeout`` seconds.
    """
    pid = lock_holder(socket_path)
    if pid is None:
        return None
    _check_is_daemon(socket_path, pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    while lock_holder(socket_path) is not None:
        if time.monotonic() >= deadline:
            raise StopTimeout(socket_path=socket_path, pid=pid, timeout=timeout)
        time.sleep(_POLL)
    return pid


def _check_is_daemon(socket_path: Path, pid: int) -> None:
    if pid <= 0:
        raise NotKsiHost(socket_path=socket_path, pid=pid, detail="the lock file holds no pid")
    listener = _listener_pid(socket_path)
    if listener is not None and listener != pid:
        raise NotKsiHost(
            socket_path=socket_path,
            pid=pid,
            detail=f"the lock names pid {pid} but pid {listener} listens on the socket",
        )
    argv = _command_line(pid)
    if argv is not None and not any(Path(arg).name in _PROGRAM_NAMES for arg in argv[:3]):
        raise NotKsiHost(
            socket_path=socket_path,
            pid=pid,
            detail=f"its command line is not ksi-host's: {' '.join(argv)[:200]}",
        )


def _listener_pid(socket_path: Path) -> int | None:
    """The pid that created the listening socket (SO_PEERCRED), if we can connect."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(socket_path))
        return peer_pid(probe)
    except OSError:
        return None
    finally:
        probe.close()


def _command_line(pid: int) -> list[str] | None:
    """``pid``'s argv where ``/proc`` tells it; None where it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]
