"""Who was running when the daemon died: the plugin, hook and event of the call in progress.

A fatal signal (a segfault in a plugin's C extension) runs no Python, so faulthandler's
stack names the plugin's file and function but not the event it was handling. The host
therefore keeps a *crash record*: a small file beside its socket (``<socket>.running``)
mapped into memory. It holds a table of lines, ``plugin hook event``, one per call site
the dispatcher has prepared (each hook of each route: :meth:`_Record.claim`, when the
route is built), and in its first word the number of the line whose call runs now.
Before each call into a plugin the dispatcher writes that number: one 4-byte write to
memory and no system call. Marking each call finished would double that, so instead a
timer on the loop writes 0 ("idle") every ``IDLE_TICK`` seconds: it runs only when no
plugin code does. A record that names a call therefore means the daemon died in that
call, or less than ``IDLE_TICK`` after it returned. Calls outside routes (start and stop
hooks, the later steps of a call that waits) write their line into a line of their own
first (:meth:`_Record.write`).

The kernel keeps a mapped file's pages when the process dies, so the next ``ksi-host
run`` on that socket reads the record (:func:`recover`), logs who was running, and tells
the crash-safe start (:mod:`ksi_host._quarantine`) whom to blame if several plugins were
starting. A daemon that stops cleanly removes the file (:func:`detach`). Only a daemon
keeps a record (:func:`attach`): a ``Host`` embedded in a program or a test has nobody
to read one after a crash, and its calls write nothing.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import asyncio

__all__ = ["IDLE_TICK", "RECORD", "Crash", "attach", "detach", "line", "recover"]

logger: Final = logging.getLogger("ksi_host.crash_record")

LINE: Final = 128
"""Bytes per line; line 0 is the header: the running line's number, pid and start time."""
LINES: Final = 8192
IDLE_TICK: Final = 0.1
_WRITTEN: Final = 1
"""The line calls outside routes write before they run."""
_UNNAMED: Final = 2
"""The line of call sites past ``LINES`` at once: named as not named."""
_FIRST: Final = 3
_WORD: Final = 4
_FIELDS: Final = 3


def line(plugin: str, hook: str, event: str | None) -> bytes:
    """``plugin hook event``, tab-separated, as a record line (cut to fit, padded)."""
    text = "\t".join((plugin, hook, event or "")).encode(errors="replace")[: LINE - 1]
    return text + b"\n" + bytes(LINE - 1 - len(text))


class _Record:
    """The table of call sites, and the mapping it lives in while a daemon keeps a record."""

    __slots__ = ("_free", "_lines", "buffer", "ids", "path", "timer")

    def __init__(self) -> None:
        self.buffer: mmap.mmap | None = None
        self.ids: memoryview | None = None
        """The mapping as 4-byte words: ``ids[0]`` is the running line (the hot path)."""
        self.path: Path | None = None
        self.timer: asyncio.TimerHandle | None = None
        self._lines: dict[int, bytes] = {_UNNAMED: line("?", "?", f"over {LINES} call sites")}
        self._free = list(range(LINES - 1, _FIRST - 1, -1))

    def claim(self, plugin: str, hook: str, event: str | None) -> int:
        """A line for one call site, kept until :meth:`release`; its number is what calls write."""
        if not self._free:
            return _UNNAMED
        number = self._free.pop()
        self._lines[number] = text = line(plugin, hook, event)
        if self.buffer is not None:
            self.buffer[number * LINE : (number + 1) * LINE] = text
        return number

    def release(self, number: int) -> None:
        """The call site is gone (its route was dropped): its line may be claimed again."""
        if number >= _FIRST and self._lines.pop(number, None) is not None:
            self._free.append(number)

    def write(self, text: bytes) -> None:
        """Name a call outside the routes (``text`` from :func:`line`) as the running one."""
        buffer, ids = self.buffer, self.ids
        if buffer is not None and ids is not None:
            buffer[_WRITTEN * LINE : (_WRITTEN + 1) * LINE] = text
            ids[0] = _WRITTEN

    def idle(self) -> None:
        """The idle timer: no plugin code runs now; again in ``IDLE_TICK`` seconds."""
        import asyncio  # only a daemon runs this timer (see attach)

        if self.ids is not None:
            self.ids[0] = 0
            self.timer = asyncio.get_running_loop().call_later(IDLE_TICK, self.idle)

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w+b") as file:
            file.truncate(LINES * LINE)
            buffer = mmap.mmap(file.fileno(), LINES * LINE)
        started = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        header = f"pid {os.getpid()} started {started}\n".encode()[: LINE - _WORD]
        buffer[_WORD : _WORD + len(header)] = header
        for number, text in self._lines.items():
            buffer[number * LINE : (number + 1) * LINE] = text
        self.buffer, self.ids, self.path = buffer, memoryview(buffer).cast("I"), path

    def close(self) -> Path | None:
        # The mapping is not closed: a call still under way may hold it (ids); it goes
        # with its last reference.
        path, self.path, self.buffer, self.ids = self.path, None, None, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return path


RECORD: Final = _Record()


def attach(path: Path) -> None:
    """Keep the record in ``path`` (created or reset), so it outlives a crash of this process.

    Call on the event loop the plugins run on: the idle timer runs there.
    """
    import asyncio  # only a daemon keeps a record: planning imports this module without it

    detach()
    RECORD.open(path)
    with contextlib.suppress(RuntimeError):  # no loop, no plugin calls to mark idle
        RECORD.timer = asyncio.get_running_loop().call_later(IDLE_TICK, RECORD.idle)


def detach() -> None:
    """A clean stop: remove the file; calls write nothing from now on."""
    path = RECORD.close()
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class Crash:
    """What a dead daemon's record says was running: plugin, hook and event."""

    plugin: str
    hook: str
    event: str | None
    daemon: str

    def describe(self) -> str:
        on = f" on {self.event!r}" if self.event else ""
        return f"plugin {self.plugin!r} in {self.hook}{on}"


def recover(path: Path) -> Crash | None:
    """Read and remove the record a daemon that did not stop cleanly left; log who ran.

    Call with the socket's lock held, before :func:`attach`. None if there is no record
    (the last daemon stopped cleanly) or no plugin call was running.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.error("ignoring the unreadable crash record %s: %s", path, exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    daemon = data[_WORD:LINE].split(b"\n", 1)[0].decode(errors="replace") or "pid unknown"
    number = int.from_bytes(data[:_WORD], sys.byteorder) if len(data) >= LINE else 0
    fields = data[number * LINE : (number + 1) * LINE].split(b"\n", 1)[0].decode(errors="replace")
    named = fields.split("\t")
    if number == 0 or len(named) != _FIELDS or not named[0]:
        logger.warning(
            "the last daemon on this socket (%s) did not stop cleanly; no plugin call was running",
            daemon,
        )
        return None
    crash = Crash(named[0], named[1], named[2] or None, daemon)
    logger.error(
        "the last daemon on this socket (%s) died while %s was running, or less than %g s "
        "after it returned (a fatal signal or a kill; see its log for the stack)",
        daemon,
        crash.describe(),
        IDLE_TICK,
    )
    return crash
