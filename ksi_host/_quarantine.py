"""Crash-safe start: a plugin that killed the daemon while loading is skipped the next time.

While ``ksi-host run`` imports and starts plugins (at start-up, on a reload, and when an
event activates a lazy plugin), it keeps a *marker* next to its socket
(``<socket>.starting``, JSON) naming the plugin whose code it is about to run. A start
that finishes removes the marker. If the process dies on the way (a segfault, an
``os._exit``, the OOM killer, SIGKILL after a hang), the marker stays, and the next
``run`` on that socket moves the plugin it names into the *quarantine*
(``$KSI_HOME/data/quarantine.json``). Every view of the plan (``ksi-host plugins``,
``doctor``, ``plugin:list``) then shows that plugin excluded with the reason code
``quarantined`` and why, and ``run`` does not import it, until either:

- the plugin changes (its file's size or modification time, or its distribution's
  version): an upgrade or an edit is taken as a fix, and it loads again; or
- the operator runs ``ksi-host reenable NAME``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

from ksi_host._crash_record import RECORD, line
from ksi_host._json_file import replace_json
from ksi_host._paths import KsiPaths
from ksi_host._plan import Candidate, Exclusion, Origin, PluginSpec, Reason

__all__ = ["Quarantine", "StartMarker", "fingerprint"]

logger: Final = logging.getLogger("ksi_host.quarantine")

QUARANTINE_FILE: Final = "quarantine.json"
REENABLE: Final = "ksi-host reenable"


def fingerprint(origin: Origin, file: Path | None) -> str:
    """What changes when the plugin is edited or upgraded: its files' stats, or its version."""
    if origin.distribution is not None:
        return f"{origin.distribution}=={origin.dist_version}"
    if file is None:
        return f"module {origin.location}"
    files = [file]
    if file.name == "__init__.py":
        files = sorted(file.parent.rglob("*.py"))
    stamps = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        stamps.append(f"{path.name}:{info.st_size}:{info.st_mtime_ns}")
    return ";".join(stamps)


def _since() -> str:
    """Now, local, to the second: the marker's ``since``.

    Converting to local time costs more than the rest of a marker entry, and a start
    writes one before each of a thousand imports within a second or two: each second
    is converted once.
    """
    return _local_second(int(time.time()))


@functools.lru_cache(maxsize=1)
def _local_second(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).astimezone().isoformat(timespec="seconds")


def _identity(origin: Origin) -> str:
    return f"{origin.kind}:{origin.location}"


@dataclass(frozen=True)
class Quarantined:
    """A plugin that killed the daemon, as the quarantine file keeps it.

    ``event`` is the event that activated a lazy plugin, when that is when it happened.
    """

    name: str
    identity: str
    fingerprint: str
    stage: str
    since: str
    event: str | None = None

    def where(self) -> str:
        """``being imported``, ``in ksi_startup``, with the lazy activation's event if any."""
        where = "being imported" if self.stage == "import" else f"in {self.stage}"
        if self.event is not None:
            where += f", activated lazily by {self.event!r}"
        return where

    def reason(self) -> Reason:
        return Reason(
            "quarantined",
            f"{self.name} was skipped: the daemon died while it was {self.where()} "
            f"({self.since}), so it is not loaded again until it changes",
            f"see the daemon's log of that time for the crash; upgrade or fix the plugin, or "
            f"run `{REENABLE} {self.name}` to try it again",
        )


class Quarantine:
    """The quarantine file of one ``KSI_HOME``: read by every view, written by ``run``."""

    def __init__(self, path: Path) -> None:
        self.path: Final = path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Quarantine:
        return cls(KsiPaths.from_env(env).data_dir / QUARANTINE_FILE)

    def entries(self) -> list[Quarantined]:
        """Every quarantined plugin; an unreadable file is logged and counts as empty."""
        try:
            raw = json.loads(self.path.read_text())
            return [Quarantined(**entry) for entry in raw["plugins"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError) as exc:
            logger.error("ignoring the unreadable quarantine file %s: %s", self.path, exc)
            return []

    def _save(self, entries: Iterable[Quarantined]) -> None:
        replace_json(self.path, {"plugins": [entry.__dict__ for entry in entries]}, indent=2)

    def add(self, entry: Quarantined) -> None:
        kept = [e for e in self.entries() if e.identity != entry.identity]
        self._save([*kept, entry])

    def reenable(self, name: str) -> list[Quarantined]:
        """Take plugin ``name`` out of the quarantine; return what was removed."""
        entries = self.entries()
        removed = [e for e in entries if e.name == name]
        if removed:
            self._save(e for e in entries if e.name != name)
        return removed

    def split(
        self, candidates: Iterable[Candidate]
    ) -> tuple[list[Candidate], list[tuple[Candidate, Exclusion]]]:
        """The candidates to import, and the quarantined ones as exclusions (not imported).

        A quarantined plugin whose fingerprint changed is loaded again; its entry stays
        until ``reenable`` (or the next crash replaces it), and no longer matches.
        """
        entries = {entry.identity: entry for entry in self.entries()}
        keep: list[Candidate] = []
        skipped: list[tuple[Candidate, Exclusion]] = []
        changed = []
        for candidate in candidates:
            entry = entries.get(_identity(candidate.origin))
            if entry is None or candidate.disabled_by is not None:
                keep.append(candidate)
            elif entry.fingerprint != fingerprint(candidate.origin, candidate.file):
                changed.append(entry)
                keep.append(candidate)
            else:
                exclusion = Exclusion(entry.name, candidate.origin, entry.reason())
                skipped.append((candidate, exclusion))
        if changed:
            logger.info("loading again, as they changed: %s", ", ".join(e.name for e in changed))
        return keep, skipped


class StartMarker:
    """The marker of what ``run`` is loading; see the module docstring.

    It names every plugin whose start is under way: at start-up one at a time, but a
    lazy plugin activated by an event may start while another one's ``ksi_startup``
    awaits. If the daemon dies with several under way, :meth:`recover` quarantines the
    one the crash record (:mod:`ksi_host._crash_record`) says was running, else all.
    """

    def __init__(self, path: Path, quarantine: Quarantine) -> None:
        self.path: Final = path
        self.quarantine: Final = quarantine
        self._files: dict[str, Path | None] = {}
        self._starting: dict[str, Quarantined] = {}
        self._importing: Quarantined | None = None
        self._fd: int | None = None
        self._size = 0

    def recover(self, running: str | None = None) -> list[Quarantined]:
        """After a crash (a marker is left): quarantine whom it names. Call with the lock.

        ``running`` is the plugin the crash record says was running when the daemon died.
        """
        try:
            raw = json.loads(self.path.read_text())
            entries = [Quarantined(**entry) for entry in (raw if isinstance(raw, list) else [raw])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            logger.error("ignoring the unreadable start marker %s: %s", self.path, exc)
            self.path.unlink(missing_ok=True)
            return []
        culprits = [entry for entry in entries if entry.name == running] or entries
        for entry in culprits:
            self.quarantine.add(entry)
            logger.error(
                "the last daemon on this socket died while %s was %s; it is quarantined "
                "(skipped until it changes, or `%s %s`)",
                entry.name,
                entry.where(),
                REENABLE,
                entry.name,
            )
        self.path.unlink(missing_ok=True)
        return culprits

    def _entry(
        self, name: str, origin: Origin, file: Path | None, stage: str, event: str | None
    ) -> Quarantined:
        return Quarantined(
            name, _identity(origin), fingerprint(origin, file), stage, _since(), event
        )

    def _write(self) -> None:
        entries = [*self._starting.values(), *([self._importing] if self._importing else [])]
        if entries:
            # Compact: json's C encoder (an indent takes its Python one, ~20 us per write).
            self._rewrite(json.dumps([entry.__dict__ for entry in entries]).encode())
        else:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.path.unlink(missing_ok=True)

    def _rewrite(self, data: bytes) -> None:
        """The marker rewritten in place by one ``pwrite``: it changes before every start.

        A fresh file renamed into place per import and per start hook cost more than the
        imports (3000 renames at 1000 plugins). A process that dies leaves its last
        completed write whole: padded with spaces over a longer one (JSON allows trailing
        whitespace). A marker removed behind our back is created again.
        """
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            os.close(self._fd)
            self._fd = None
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._size = 0
        os.pwrite(self._fd, data.ljust(self._size), 0)
        self._size = max(self._size, len(data))

    # The Reporter's callbacks: importing is where plugin code first runs.

    def found(self, candidate: Candidate) -> None:
        self._files[_identity(candidate.origin)] = candidate.file

    def importing(self, candidate: Candidate) -> None:
        """Imports do not wait, so nothing else runs meanwhile: this one replaces the last."""
        self._importing = self._entry(
            candidate.name_hint, candidate.origin, candidate.file, "import", None
        )
        self._write()
        RECORD.write(line(candidate.name_hint, "import", None))

    def described(self, spec: PluginSpec) -> None:
        """The import is over; the file follows at the next write or :meth:`done`."""
        self._importing = None

    def excluded(self, exclusion: Exclusion) -> None:
        """The import is over (or never began); the file follows at the next write."""
        self._importing = None

    # The host's callbacks around a plugin's start: its lazy import, its start hooks.

    def starting(self, spec: PluginSpec, stage: str, event: str | None = None) -> None:
        """``spec``'s code runs next: ``stage`` is ``import`` or a start hook."""
        self._importing = None  # imports do not wait: none is under way now
        file = self._files.get(_identity(spec.origin))
        self._starting[_identity(spec.origin)] = self._entry(
            spec.name, spec.origin, file, stage, event
        )
        self._write()
        if stage == "import":  # a hook's call writes its own line
            RECORD.write(line(spec.name, stage, event))

    def finished(self, spec: PluginSpec) -> None:
        """``spec``'s stage is over; the file follows at the next write or :meth:`done`."""
        self._starting.pop(_identity(spec.origin), None)

    def done(self) -> None:
        """No import is under way: keep only the starts still under way (none: no marker)."""
        self._importing = None
        self._write()
