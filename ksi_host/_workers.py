"""What the daemon knows of isolated plugins' workers without importing their machinery.

The machinery (:mod:`ksi_host._isolation`, with doctor's isolated import and the wire
protocol) is imported only when a plan isolates a plugin. The daemon's forced stop and
the host's checks for a worker's proxy run in every daemon, so they live here: no proxy
exists, and no worker runs, until that module is imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Final, TypeGuard

if TYPE_CHECKING:
    from ksi_host._isolation import WorkerPlugin

__all__ = ["LIVE", "is_worker", "kill_workers"]

LIVE: Final[set[int]] = set()
"""Pids of the running workers, for the forced stop (:func:`kill_workers`)."""


def kill_workers() -> None:
    """SIGKILL every worker still running (the daemon's emergency cleanup)."""
    for pid in tuple(LIVE):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def is_worker(plugin: object) -> TypeGuard[WorkerPlugin]:
    """Whether ``plugin`` is an isolated plugin's proxy (``_isolation.WorkerPlugin``)."""
    isolation = sys.modules.get("ksi_host._isolation")
    return isolation is not None and isinstance(plugin, isolation.WorkerPlugin)
