"""Notice when the event loop is blocked, say which plugin blocks it, and stop it at its deadline.

The loop beats a heartbeat every ``tick`` seconds; a thread checks it. When the beat is
overdue by more than ``threshold`` (``[host] watchdog_threshold``, default 0.5 s), the
thread reads the loop thread's stack, finds the innermost call into a plugin (a
*call site*: the dispatcher's stage loop, ``call_hookimpl``), and logs the plugin, the
hook, the event and the stack, once per stall; the stall is counted per plugin
(``system:metrics`` and ``plugin:list`` show the counts).

A stall that outlasts the call's deadline (``[host] call_timeout`` and
``[host.call_timeouts]`` for events, ``startup_timeout``/``shutdown_timeout`` for the
lifecycle hooks) is cut short: the thread sends ``SIGUSR2`` to the loop thread, whose
handler raises :class:`~ksi_host.errors.PluginStalled` inside the plugin's code
(``time.sleep`` and pure-Python loops are interrupted; a C call that ignores signals is
not, and the stop deadline of :mod:`ksi_host._signals` is the last resort). The handler
raises only while that very call is still on the stack, so the host's own code never
sees it. Plugins must leave ``SIGUSR2`` alone.

The hot path pays nothing: who is running is read from the stack only when a stall
is seen, and the heartbeat is one timer callback per tick.

A loop that is not running is not blocked: nothing is reported while it is stopped, the
time it was stopped does not count once it runs again, and the thread ends when the
loop is closed, so a watchdog whose host was never stopped (its start raised, or it
was left running when ``asyncio.run`` returned) cannot blame or interrupt whatever the
thread runs next, such as another host's plugin.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any, Final

from ksi_host.errors import PluginStalled

__all__ = ["INTERRUPT_SIGNAL", "Blame", "Watchdog", "blame", "call_site"]

logger: Final = logging.getLogger("ksi_host.watchdog")

INTERRUPT_SIGNAL: Final = signal.SIGUSR2
_MAX_TICK: Final = 0.1

SiteReader = Callable[[FrameType], "tuple[str, str, str | None] | None"]
"""Reads ``(plugin, hook, event)`` from a call site's frame, or None when it calls no plugin."""

_SITES: Final[dict[CodeType, SiteReader]] = {}


def call_site(function: Callable[..., Any], reader: SiteReader) -> None:
    """Declare ``function`` a place where the host calls plugin code; ``reader`` says whom."""
    _SITES[function.__code__] = reader


@dataclass(frozen=True)
class Blame:
    """Who was running on the loop thread: the plugin, hook and event, and the stack."""

    plugin: str | None
    hook: str | None
    event: str | None
    stack: str
    site: FrameType | None = None

    def describe(self) -> str:
        """``plugin 'x' in ksi_handle_event on 'a:b'``, or what is known of it."""
        if self.plugin is None:
            return "the host itself or a task no plugin call is on the stack of"
        on = f" on {self.event!r}" if self.event else ""
        return f"plugin {self.plugin!r} in {self.hook}{on}"


def blame(frame: FrameType | None) -> Blame:
    """The innermost plugin call on the stack that ends in ``frame``."""
    stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
    while frame is not None:
        reader = _SITES.get(frame.f_code)
        if reader is not None:
            found = reader(frame)
            if found is not None:
                return Blame(*found, stack=stack, site=frame)
        frame = frame.f_back
    return Blame(None, None, None, stack)


def _on_stack(site: FrameType, frame: FrameType | None) -> bool:
    while frame is not None:
        if frame is site:
            return True
        frame = frame.f_back
    return False


@dataclass
class _Interrupt:
    beat: float
    site: FrameType
    plugin: str
    hook: str
    seconds: float
    deadline: float


class Watchdog:
    """The heartbeat on one loop and the thread that watches it; see the module docstring."""

    def __init__(self, threshold: float, deadline_for: Callable[[str, str], float | None]) -> None:
        self.threshold: Final = threshold
        self.tick: Final = min(_MAX_TICK, threshold / 4)
        self.stalls: Final[Counter[str]] = Counter()
        self._deadline_for = deadline_for
        self._beat = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._loop_thread = threading.get_ident()
        self._pending: _Interrupt | None = None
        self._previous_handler: Any = None
        self._handles_signal = False

    def start(self) -> None:
        """Beat on the running loop and watch it; interrupt stalls when on the main thread."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._timer = self._loop.call_later(self.tick, self._on_beat)
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(INTERRUPT_SIGNAL, self._on_interrupt)
            self._handles_signal = True
        self._thread = threading.Thread(target=self._watch, name="ksi-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; safe to call twice."""
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._handles_signal:
            signal.signal(INTERRUPT_SIGNAL, self._previous_handler)
            self._handles_signal = False
        self._pending = None

    def _on_beat(self) -> None:
        self._beat = time.monotonic()
        assert self._loop is not None
        self._timer = self._loop.call_later(self.tick, self._on_beat)

    def _watch(self) -> None:
        seen = None
        interrupted = None
        idle_until = 0.0  # when the loop was last seen not running
        while not self._stopped.wait(self.tick):
            loop = self._loop
            if loop is not None and not loop.is_running():
                if loop.is_closed():
                    return
                idle_until = time.monotonic()
                continue
            beat = self._beat
            blocked = time.monotonic() - max(beat, idle_until) - self.tick
            if blocked < self.threshold:
                interrupted = None
                continue
            found = blame(sys._current_frames().get(self._loop_thread))
            if seen != beat:
                seen = beat
                self.stalls[found.plugin or "<host>"] += 1
                logger.warning(
                    "event loop blocked for %.2f s by %s; every client waits. Stack:\n%s",
                    blocked,
                    found.describe(),
                    found.stack,
                )
            site = found.site
            if found.plugin is None or found.hook is None or site is None or site is interrupted:
                continue
            deadline = self._deadline_for(found.plugin, found.hook)
            if deadline is None or blocked < deadline or not self._handles_signal:
                continue
            interrupted = site
            logger.error(
                "%s blocked the event loop for %.1f s, past its %g s deadline: interrupting it",
                found.describe(),
                blocked,
                deadline,
            )
            self._pending = _Interrupt(beat, site, found.plugin, found.hook, blocked, deadline)
            signal.pthread_kill(self._loop_thread, INTERRUPT_SIGNAL)

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        """On the loop thread: raise inside the stalled call, if it is still running."""
        pending, self._pending = self._pending, None
        if pending is None or pending.beat != self._beat or not _on_stack(pending.site, frame):
            return
        raise PluginStalled(pending.plugin, pending.hook, pending.seconds, pending.deadline)
