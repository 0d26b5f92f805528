"""Crash-safe start: a plugin that killed the daemon while loading is skipped the next time.

While ``ksi-host run`` imports and starts plugins, it keeps a *marker* next to its socket
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

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

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


def _identity(origin: Origin) -> str:
    return f"{origin.kind}:{origin.location}"


def _write_json(path: Path, data: object) -> None:
    """Replace ``path`` atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(json.dumps(data, indent=2))
    scratch.replace(path)


@dataclass(frozen=True)
class Quarantined:
    """A plugin that killed the daemon, as the quarantine file keeps it."""

    name: str
    identity: str
    fingerprint: str
    stage: str
    since: str

    def reason(self) -> Reason:
        where = "being imported" if self.stage == "import" else f"in {self.stage}"
        return Reason(
            "quarantined",
            f"{self.name} was skipped: the daemon died while it was {where} ({self.since}), "
            "so it is not loaded again until it changes",
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
        _write_json(self.path, {"plugins": [entry.__dict__ for entry in entries]})

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
    """The marker of what ``run`` is loading; see the module docstring."""

    def __init__(self, path: Path, quarantine: Quarantine) -> None:
        self.path: Final = path
        self.quarantine: Final = quarantine
        self._files: dict[str, Path | None] = {}

    def recover(self) -> Quarantined | None:
        """After a crash (a marker is left): quarantine the plugin it names. Call with the lock."""
        try:
            raw = json.loads(self.path.read_text())
            entry = Quarantined(**raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            logger.error("ignoring the unreadable start marker %s: %s", self.path, exc)
            self.path.unlink(missing_ok=True)
            return None
        self.quarantine.add(entry)
        self.path.unlink(missing_ok=True)
        logger.error(
            "the last daemon on this socket died while %s was %s; it is quarantined "
            "(skipped until it changes, or `%s %s`)",
            entry.name,
            "being imported" if entry.stage == "import" else f"in {entry.stage}",
            REENABLE,
            entry.name,
        )
        return entry

    def _mark(self, name: str, origin: Origin, file: Path | None, stage: str) -> None:
        since = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        entry = Quarantined(name, _identity(origin), fingerprint(origin, file), stage, since)
        _write_json(self.path, entry.__dict__)

    # The Reporter's callbacks: importing is where plugin code first runs.

    def found(self, candidate: Candidate) -> None:
        self._files[_identity(candidate.origin)] = candidate.file

    def importing(self, candidate: Candidate) -> None:
        self._mark(candidate.name_hint, candidate.origin, candidate.file, "import")

    def described(self, spec: PluginSpec) -> None:
        """Nothing to do: the next import or start replaces the marker."""

    def excluded(self, exclusion: Exclusion) -> None:
        """Nothing to do: the next import or start replaces the marker."""

    # The host's callbacks around the start hooks.

    def starting(self, spec: PluginSpec, hook: str) -> None:
        self._mark(spec.name, spec.origin, self._files.get(_identity(spec.origin)), hook)

    def done(self) -> None:
        """Every plugin started (or failed without killing us): no marker."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
