"""The ``ksi.plugins`` entry points of ``sys.path``, kept until what the scan read changes.

Once manifests come from their cache (:mod:`ksi_host._manifest_cache`), reading the
metadata of every installed distribution is most of what listing a thousand plugins
costs. As stevedore does, what the scan found is kept (in
``$KSI_HOME/cache/entry-points.json``), keyed by a digest of the interpreter, ksi-host's
version, and, for every ``sys.path`` entry, its inode, size, modification and change
times and those of each ``.dist-info`` / ``.egg-info`` in it and of the files of it the
scan reads (``entry_points.txt``, ``METADATA``, ``PKG-INFO``, ``RECORD``). pip creates
or removes a ``.dist-info`` folder on every install, upgrade and uninstall; a file edited
in place (``setup.py develop`` rewrites ``entry_points.txt``) has new times; and no tool
can set a change time back, so an archive unpacked with its old times counts as a change
too. Dating costs a directory listing per folder and a few ``stat`` calls per
distribution, a tenth of the scan. Nothing is kept, and the next command scans again:

- when anything dated changed less than :data:`SETTLE_SECONDS` before the scan (file
  times are coarse: a second change in the same tick leaves the time as it was, and an
  install may still be under way);
- when a finder other than importlib_metadata's path finder provides distributions
  (its sources cannot be dated).

A kept manifest that is no longer a file means a scan too. The same scan also records
whether any distribution declares a ``pydantic`` entry point (a pydantic plugin), so a
command can tell pydantic there is none to look for (:mod:`ksi_host._pydantic_plugins`)
while the scan is valid. The cache holds data only
(JSON); an unreadable or unwritable one is ignored, and the candidates are the same
either way.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import importlib_metadata

from ksi_host import __version__
from ksi_host._cache_file import read_cache, write_cache
from ksi_host._paths import KsiPaths
from ksi_host._plan import Candidate, Origin

__all__ = ["CACHE_FILE", "SETTLE_SECONDS", "ScanCache"]

CACHE_FILE: Final = "entry-points.json"
SETTLE_SECONDS: Final = 2.0
_FORMAT: Final = 1


def _key(now: float) -> str | None:
    """What the scan read, dated, or None when it cannot be (see the module docstring)."""
    finders = [getattr(finder, "find_distributions", None) for finder in sys.meta_path]
    standard = importlib_metadata.MetadataPathFinder.find_distributions
    if any(found is not None and found != standard for found in finders):
        return None
    digest = hashlib.sha256(f"{_FORMAT}\0{__version__}\0{sys.version}\0{sys.prefix}".encode())
    for entry in sys.path:
        location = Path(entry or os.curdir).absolute()
        try:
            stamps = [_stamp(location.stat(), now), *_metadata_stamps(location, now)]
        except OSError:
            stamps = ["missing"]
        if any(stamp.endswith(_HOT) for stamp in stamps):
            return None
        digest.update(f"\0{location}\0{stamps}".encode())
    return digest.hexdigest()


_HOT: Final = "hot"
_METADATA_FILES: Final = frozenset({"entry_points.txt", "METADATA", "PKG-INFO", "RECORD"})


def _stamp(info: os.stat_result, now: float) -> str:
    """Inode, size, modification and change times, or ``hot`` when changed too recently."""
    if now - max(info.st_mtime_ns, info.st_ctime_ns) / 1e9 < SETTLE_SECONDS:
        return _HOT
    return f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def _metadata_stamps(folder: Path, now: float) -> list[str]:
    """Each ``.dist-info`` / ``.egg-info`` of a folder and the files of it the scan reads.

    A file edited in place (``setup.py develop`` rewrites ``entry_points.txt`` so) changes
    no folder's time, so each is dated itself.
    """
    if not folder.is_dir():
        return []
    stamps = []
    with os.scandir(folder) as entries:
        infos = sorted(
            (entry for entry in entries if entry.name.endswith((".dist-info", ".egg-info"))),
            key=lambda entry: entry.name,
        )
    for info in infos:
        stamps.append(f"{info.name}={_stamp(info.stat(), now)}")
        if info.is_dir():
            with os.scandir(info.path) as files:
                stamps += sorted(
                    f"{file.name}={_stamp(file.stat(), now)}"
                    for file in files
                    if file.name in _METADATA_FILES
                )
    return stamps


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
        raw = read_cache(self.path)
        if not isinstance(raw, dict) or raw.get("key") != self._key:
            return None
        try:
            found = [_candidate(row) for row in raw["rows"]]
        except (KeyError, TypeError):
            return None
        if any(c.manifest is not None and not c.manifest.is_file() for c in found):
            return None
        return found

    def pydantic_plugins(self) -> bool | None:
        """Whether a distribution on this same ``sys.path`` declares a pydantic plugin.

        None when no valid kept scan says: ask pydantic's own scan.
        """
        if self._key is None:
            return None
        raw = read_cache(self.path)
        if not isinstance(raw, dict) or raw.get("key") != self._key:
            return None
        found = raw.get("pydantic")
        return found if isinstance(found, bool) else None

    def keep(self, candidates: Sequence[Candidate], *, pydantic_plugins: bool) -> None:
        """Remember what a scan found, unless the scan cannot be dated."""
        if self._key is None:
            return
        write_cache(
            self.path,
            {
                "key": self._key,
                "rows": [_row(c) for c in candidates],
                "pydantic": pydantic_plugins,
            },
        )
