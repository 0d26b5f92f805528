"""What the daemon knows of isolated plugins' workers without importing their machinery."""

from __future__ import annotations

import subprocess
import sys

from ksi_host import BasePlugin, PluginMetadata
from ksi_host._workers import LIVE, is_worker, kill_workers


def test_the_host_runs_without_importing_the_worker_machinery() -> None:
    probe = (
        "import sys, ksi_host._lifecycle, ksi_host._reload, ksi_host._daemon\n"
        "print('ksi_host._isolation' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["False"], done.stderr


def test_only_a_worker_proxy_is_a_worker() -> None:
    from ksi_host._isolation import WorkerPlugin  # what a plan that isolates a plugin imports

    plain = BasePlugin(PluginMetadata(name="plain"))
    proxy = WorkerPlugin.__new__(WorkerPlugin)
    assert not is_worker(plain)
    assert is_worker(proxy)


def test_kill_workers_kills_every_live_worker() -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    LIVE.add(alive.pid)
    try:
        kill_workers()
        assert alive.wait(timeout=10) == -9
    finally:
        LIVE.discard(alive.pid)
        alive.kill()
