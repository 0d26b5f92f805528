"""SIGTERM and SIGINT stop the daemon, even while a plugin blocks the event loop.

asyncio runs a signal's callback on the loop, so a plugin that blocks the loop would
also block the stop. Here the C-level signal handler writes the signal's number to a
pipe (``signal.set_wakeup_fd``) that a thread reads, whatever the loop thread is
doing. On the first stop signal the thread asks the loop to stop (the normal path:
drain, stop the plugins, remove the socket and the lock) and arms a deadline of
``[server] drain_timeout + [host] stop_grace`` seconds. If the process is still
there at the deadline, or a second stop signal arrives, the thread logs who is
blocking (plugin, hook, event, stack), runs the emergency cleanups (the socket and
the lock are removed, worker processes killed) and exits with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

from ksi_host._watchdog import blame

__all__ = ["STOP_SIGNALS", "StopSignals"]

logger: Final = logging.getLogger("ksi_host.daemon")

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
FORCED_EXIT: Final = 1


class StopSignals:
    """Turn SIGTERM/SIGINT into ``on_stop()`` on the loop, with a hard deadline behind it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_stop: Callable[[int], None],
        deadline: float,
        cleanups: tuple[Callable[[], None], ...],
    ) -> None:
        self._loop = loop
        self._on_stop = on_stop
        self._deadline = deadline
        self._cleanups = cleanups
        self._loop_thread = threading.get_ident()
        self._received = False
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        """Take over SIGTERM and SIGINT (the loop thread must be the main thread)."""
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        self._pipe = (read_end, write_end)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._read, name="ksi-signals", daemon=True)
        self._thread.start()

    def uninstall(self) -> None:
        """Give the signals back; the deadline no longer applies."""
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self._timer is not None:
            self._timer.cancel()
        read_end, write_end = self._pipe
        self._pipe = None
        os.close(write_end)
        if self._thread is not None:
            self._thread.join()
        os.close(read_end)

    def _on_signal(self, signum: int, frame: object) -> None:
        """The Python-level handler: the thread reading the pipe does the work, unless
        something (``loop.add_signal_handler`` in a plugin) took the wakeup fd from us."""
        if self._pipe is None:
            return
        ours = self._pipe[1]
        current = signal.set_wakeup_fd(ours, warn_on_full_buffer=False)
        if current != ours:
            signal.set_wakeup_fd(current)
            self._stop(signum)

    def _read(self) -> None:
        assert self._pipe is not None
        read_end = self._pipe[0]
        while True:
            try:
                chunk = os.read(read_end, 64)
            except OSError:
                return
            if not chunk:
                return
            for signum in chunk:
                if signum in STOP_SIGNALS:
                    self._stop(signum)

    def _stop(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._received:
            self._force(f"received {name} again while stopping")
            return
        self._received = True
        logger.info("received %s: stopping (at most %g s)", name, self._deadline)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._on_stop, signum)
        self._timer = threading.Timer(
            self._deadline, self._force, (f"still running {self._deadline:g} s after {name}",)
        )
        self._timer.daemon = True
        self._timer.start()

    def _force(self, why: str) -> None:
        found = blame(sys._current_frames().get(self._loop_thread))
        logger.error(
            "%s: %s blocks the stop; removing the socket and lock and exiting. Stack:\n%s",
            why,
            found.describe(),
            found.stack,
        )
        for cleanup in self._cleanups:
            try:
                cleanup()
            except Exception:
                logger.exception("emergency cleanup %r failed", cleanup)
        logging.shutdown()
        os._exit(FORCED_EXIT)
