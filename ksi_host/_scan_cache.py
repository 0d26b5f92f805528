"""The ``ksi.plugins`` entry points of ``sys.path``, kept until a folder on it changes.

Once manifests come from their cache (:mod:`ksi_host._manifest_cache`), reading the
metadata of every installed distribution is most of what listing a thousand plugins
costs. As stevedore does, what the scan found is kept (in
``$KSI_HOME/cache/entry-points.json``), keyed by the interpreter, ksi-host's version, and
every ``sys.path`` entry with its inode, modification and change times: pip creates or
removes a ``.dist-info`` folder on every install, upgrade and uninstall, which changes
both times of the folder holding it (and no tool can set a change time back, so an
archive unpacked with its old times still counts as a change). Nothing is kept, and the
next command scans again:

- when a folder on ``sys.path`` changed less than :data:`SETTLE_SECONDS` before the scan
  (file times are coarse: a second change in the same tick leaves the time as it was,
  and an install may still be under way);
- when a finder other than importlib_metadata's path finder provides distributions
  (its sources have no folder to date).

A kept manifest that is no longer a file means a scan too. The cache holds data only
(JSON); an unreadable or unwritable one is ignored, and the candidates are the same
either way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import importlib_metadata

from ksi_host import __version__
from ksi_host._paths import KsiPaths
from ksi_host._plan import Candidate, Origin

__all__ = ["CACHE_FILE", "SETTLE_SECONDS", "ScanCache"]

CACHE_FILE: Final = "entry-points.json"
SETTLE_SECONDS: Final = 2.0
_FORMAT: Final = 1

logger: Final = logging.getLogger("ksi_host.scan_cache")


def _key(now: float) -> list[Any] | None:
    """What the scan depends on, or None when it cannot be dated (see the module docstring)."""
    finders = [getattr(finder, "find_distributions", None) for finder in sys.meta_path]
    standard = importlib_metadata.MetadataPathFinder.find_distributions
    if any(found is not None and found != standard for found in finders):
        return None
    folders: list[list[Any]] = []
    for entry in sys.path:
        location = Path(entry or os.curdir).absolute()
        try:
            info = location.stat()
        except OSError:
            folders.append([str(location), None])
            continue
        if now - max(info.st_mtime_ns, info.st_ctime_ns) / 1e9 < SETTLE_SECONDS:
            return None
        folders.append([str(location), info.st_ino, info.st_mtime_ns, info.st_ctime_ns])
    return [_FORMAT, __version__, sys.version, sys.prefix, folders]


def _row(candidate: Candidate) -> dict[str, Any]:
    origin = candidate.origin
    return {
        "name": candidate.name_hint,
        "value": candidate.entry_point,
        "distribution": origin.distribution,
        "version": origin.dist_version,
        "entry_point": origin.entry_point,
        "host": origin.host_requirement,
        "manifest": str(candidate.manifest) if candidate.manifest is not None else None,
    }


def _candidate(row: Mapping[str, Any]) -> Candidate:
    manifest = row["manifest"]
    return Candidate(
        name_hint=row["name"],
        origin=Origin(
            "entry-point",
            row["value"],
            distribution=row["distribution"],
            dist_version=row["version"],
            entry_point=row["entry_point"],
            host_requirement=row["host"],
        ),
        entry_point=row["value"],
        manifest=Path(manifest) if manifest is not None else None,
    )


class ScanCache:
    """The kept scan of one ``KSI_HOME``, for the ``sys.path`` of this process."""

    def __init__(self, path: Path) -> None:
        self.path: Final = path
        self._key: Final = _key(time.time())

    @classmethod
    def of(cls, env: Mapping[str, str] | None = None) -> ScanCache:
        return cls(KsiPaths.from_env(env).cache_dir / CACHE_FILE)

    def candidates(self) -> list[Candidate] | None:
        """The candidates the last scan of this same ``sys.path`` found, or None: scan."""
        if self._key is None:
            return None
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.debug("ignoring the unreadable entry-point cache %s: %s", self.path, exc)
            return None
        if not isinstance(raw, dict) or raw.get("key") != self._key:
            return None
        try:
            found = [_candidate(row) for row in raw["rows"]]
        except (KeyError, TypeError):
            return None
        if any(c.manifest is not None and not c.manifest.is_file() for c in found):
            return None
        return found

    def keep(self, candidates: Sequence[Candidate]) -> None:
        """Remember what a scan found, unless the scan cannot be dated."""
        if self._key is None:
            return
        data = {"key": self._key, "rows": [_row(candidate) for candidate in candidates]}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            scratch.write_text(json.dumps(data), encoding="utf-8")
            scratch.replace(self.path)
        except OSError as exc:
            logger.debug("cannot write the entry-point cache %s: %s", self.path, exc)
