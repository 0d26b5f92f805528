"""Reload a real daemon: SIGHUP beside the stop-signal thread, and isolated plugins' workers.

Each daemon sees entry points from its own site folder (on ``PYTHONPATH``), where a
test installs and removes plugin distributions while it runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonProcess, LineSocket, answering_source, write_config
from tests.containment import stop_cleanly
from tests.dists import install_dist

pytestmark = pytest.mark.slow


@contextmanager
def daemon_with_site(host: str = "") -> Iterator[tuple[DaemonProcess, Path]]:
    """A started daemon (``host`` lines in its ``[host]`` section) and its site folder."""
    root = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    site = root / "site"
    site.mkdir()
    write_config(root / "ksi.toml", state=root / "state.db", drain=1.0, extra=f"[host]\n{host}")
    daemon = DaemonProcess(root)
    daemon.env["PYTHONPATH"] = str(site)
    try:
        daemon.start()
        yield daemon, site
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def install_answering(site: Path, name: str, *, tail: str = "") -> Path:
    """``ksi-plugin-NAME`` 1.0, whose plugin ``NAME`` answers ``NAME:ping`` with its pid.

    ``tail`` ends its module, to change its code but not its version.
    """
    return install_dist(
        site,
        dist=f"ksi-plugin-{name}",
        version="1.0",
        files={f"{name}_mod.py": answering_source(name, "1.0") + tail},
        entry_points={name: f"{name}_mod"},
    )


def wait_gone(daemon: DaemonProcess, pid: int) -> None:
    """The process ``pid`` ends (and is reaped) within 10 s."""
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs:\n{daemon.log()}"
        time.sleep(0.05)


def wait_for_log(daemon: DaemonProcess, text: str, timeout: float = 30) -> None:
    assert daemon.proc is not None
    deadline = time.monotonic() + timeout
    while text not in daemon.log():
        assert daemon.proc.poll() is None, daemon.log()
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)


def listed(client: LineSocket, name: str) -> dict[str, Any]:
    plugins = client.ask("plugin:list")["plugins"]
    found: dict[str, Any] = next(p for p in plugins if p["name"] == name)
    return found


def test_sighup_beside_the_stop_signal_thread_starts_a_new_plugin_in_the_same_daemon() -> None:
    with daemon_with_site() as (daemon, site):
        assert daemon.proc is not None
        client = LineSocket(daemon.socket_path)
        assert client.ask("test:echo", {"n": 1}) == {"echo": {"n": 1}}
        install_answering(site, "hup")

        daemon.proc.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "reloaded: started hup")
        assert "received SIGHUP: reloading the plugin set" in daemon.log()
        answer = client.ask("hup:ping")
        assert answer == {"plugin": "hup", "version": "1.0", "pid": daemon.proc.pid}
        assert client.ask("test:echo", {"n": 2}) == {"echo": {"n": 2}}
        client.close()
        stop_cleanly(daemon, deadline=10)  # the stop-signal thread still owns SIGTERM
        assert "received SIGTERM: stopping" in daemon.log()


def test_a_reload_starts_and_stops_an_isolated_plugin_and_its_worker() -> None:
    with daemon_with_site('isolated = ["iso"]') as (daemon, site):
        assert daemon.proc is not None
        sock = ("--socket", str(daemon.socket_path))
        client = LineSocket(daemon.socket_path)
        info = install_answering(site, "iso")

        started = daemon.cli("reload", *sock)
        assert started.stdout == "daemon reloaded:\n  started: iso\n", started.stderr
        answer = client.ask("iso:ping")
        worker = listed(client, "iso")["worker"]["pid"]
        assert answer == {"plugin": "iso", "version": "1.0", "pid": worker}
        assert worker != daemon.proc.pid

        unchanged = daemon.cli("reload", *sock)
        assert unchanged.stdout == "daemon reloaded: no plugin changed\n", unchanged.stderr
        assert client.ask("iso:ping")["pid"] == worker  # the same worker lives on

        shutil.rmtree(info)
        info = install_answering(site, "iso", tail="# rebuilt\n")
        rebuilt = daemon.cli("reload", *sock)
        assert rebuilt.stdout == "daemon reloaded:\n  restarted: iso\n", rebuilt.stderr
        wait_gone(daemon, worker)
        worker = listed(client, "iso")["worker"]["pid"]
        assert client.ask("iso:ping")["pid"] == worker

        shutil.rmtree(info)
        (site / "iso_mod.py").unlink()
        stopped = daemon.cli("reload", *sock)
        assert stopped.stdout == "daemon reloaded:\n  stopped: iso\n", stopped.stderr
        assert client.ask("iso:ping")["error"]["code"] == "NO_HANDLER"
        wait_gone(daemon, worker)
        assert client.ask("test:echo", {"n": 3}) == {"echo": {"n": 3}}
        client.close()
        stop_cleanly(daemon, deadline=10)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie its parent never reaped counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
