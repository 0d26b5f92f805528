"""The ``ksi.plugins`` entry points of ``sys.path``, kept until what the scan read changes.

Once manifests come from their cache (:mod:`ksi_host._manifest_cache`), reading the
metadata of every installed distribution is most of what listing a thousand plugins
costs. As stevedore does, what the scan found is kept (in
``$KSI_HOME/cache/entry-points.json``), keyed by a digest of the interpreter, ksi-host's
version, and, for every ``sys.path`` entry, its inode, size, modification and change
times and those of each file the scan reads in it: every ``.dist-info`` /
``.egg-info`` folder's ``entry_points.txt``, ``METADATA`` (or else ``PKG-INFO``) and
``RECORD``, and every ``.egg-info`` file. pip creates or removes a ``.dist-info`` folder
on every install, upgrade and uninstall, which changes its ``sys.path`` folder's times;
a file edited in place (``setup.py develop`` rewrites ``entry_points.txt``) has new
times, and one created or removed is missing on one side; and no tool can set a change
time back, so an archive unpacked with its old times counts as a change
too. Dating costs a directory listing per folder and a ``stat`` of each file the scan
may read, a tenth of the scan. Nothing is kept, and the next command scans again:

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
import importlib.machinery
import os
import stat
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ksi_host import __version__
from ksi_host._cache_file import read_cache, write_cache
from ksi_host._paths import KsiPaths
from ksi_host._stamps import HOT, SETTLE_SECONDS, file_stamp, stamp
from ksi_host.status import Origin

if TYPE_CHECKING:
    from ksi_host._plan import Candidate

__all__ = ["CACHE_FILE", "SETTLE_SECONDS", "ScanCache", "sys_path_key"]

CACHE_FILE: Final = "entry-points.json"
_FORMAT: Final = 1


def _standard_finder() -> object:
    """The finder that lists the distributions of ``sys.path``'s folders.

    Once imported, importlib_metadata replaces the standard library's with its own,
    which reads the same folders; until then (a command that may not need it) it is
    the standard library's.
    """
    backport = sys.modules.get("importlib_metadata")
    if backport is not None:
        return backport.MetadataPathFinder.find_distributions
    return importlib.machinery.PathFinder.find_distributions


def sys_path_key(now: float) -> str | None:
    """What the scan read, dated, or None when it cannot be (see the module docstring)."""
    finders = [getattr(finder, "find_distributions", None) for finder in sys.meta_path]
    standard = _standard_finder()
    if any(found is not None and found != standard for found in finders):
        return None
    settled = int((now - SETTLE_SECONDS) * 1e9)
    stamps: list[object] = [_FORMAT, __version__, sys.version, sys.prefix]
    for entry in sys.path:
        location = os.path.abspath(entry or os.curdir)  # noqa: PTH100
        stamps.append(location)
        try:
            info = os.stat(location)  # noqa: PTH116
            stamps.append(stamp(info, settled))
            if stat.S_ISDIR(info.st_mode):
                stamps += _metadata_stamps(location, settled)
        except OSError:
            stamps.append("missing")
    if HOT in stamps:
        return None
    return hashlib.sha256(repr(stamps).encode()).hexdigest()


_METADATA_FILES: Final = ("entry_points.txt", "METADATA", "RECORD")
_FALLBACK: Final = "PKG-INFO"
"""Read for a distribution's name and version only where there is no ``METADATA``."""


def _metadata_stamps(folder: str, settled: int) -> list[object]:
    """Each ``.dist-info`` / ``.egg-info`` of a folder and each file of it the scan reads.

    Installing, replacing or removing a distribution's folder changes ``folder``'s own
    times, which its caller dates. A file edited in place (``setup.py develop`` rewrites
    ``entry_points.txt`` so) changes no folder's time, so each is dated itself; a
    missing one is dated as missing, so creating it counts too.
    """
    with os.scandir(folder) as entries:
        found = sorted(
            (entry.name, entry.is_dir())
            for entry in entries
            if entry.name.endswith((".dist-info", ".egg-info"))
        )
    stamps: list[object] = []
    for name, is_dir in found:
        path = f"{folder}{os.sep}{name}"
        stamps.append(name)
        if not is_dir:  # an .egg-info file is the metadata itself
            stamps.append(stamp(os.stat(path), settled))  # noqa: PTH116
            continue
        for file in _METADATA_FILES:
            stamps.append(file_stamp(f"{path}{os.sep}{file}", settled))
        if stamps[-2] is None:
            stamps.append(file_stamp(f"{path}{os.sep}{_FALLBACK}", settled))
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
        "dist_info": candidate.dist_info,
    }


def _candidates(rows: Iterable[Mapping[str, Any]]) -> list[Candidate]:
    # Not imported with this module: every command dates the scan before it imports
    # pydantic (ksi_host._pydantic_plugins), and _plan's models need it. Imported once
    # for all rows: an import statement per row costs a thousand plugins a millisecond.
    from ksi_host._plan import Candidate

    found = []
    for row in rows:
        manifest = row["manifest"]
        origin = Origin(
            "entry-point",
            row["value"],
            distribution=row["distribution"],
            dist_version=row["version"],
            entry_point=row["entry_point"],
            host_requirement=row["host"],
        )
        found.append(
            Candidate(
                name_hint=row["name"],
                origin=origin,
                entry_point=row["value"],
                manifest=Path(manifest) if manifest is not None else None,
                dist_info=row.get("dist_info"),
            )
        )
    return found


class ScanCache:
    """The kept scan of one ``KSI_HOME``, for the ``sys.path`` of this process."""

    _early: ClassVar[ScanCache | None] = None
    _last: ClassVar[ScanCache | None] = None

    def __init__(self, path: Path) -> None:
        self.path: Final = path
        self._searched: Final = _searched()
        self._key: Final = sys_path_key(time.time())
        self._raw: object = _UNREAD

    @classmethod
    def of(cls, env: Mapping[str, str] | None = None) -> ScanCache:
        """The cache as of now, or as :meth:`early` dated it for this very use."""
        path = KsiPaths.from_env(env).cache_dir / CACHE_FILE
        early, ScanCache._early = ScanCache._early, None
        fresh = early is not None and early.path == path and early._searched == _searched()
        ScanCache._last = early if fresh and early is not None else cls(path)
        return ScanCache._last

    @classmethod
    def last_key(cls, env: Mapping[str, str] | None = None) -> str | None:
        """The key this process's last scan (made or read) was dated with, for this ``sys.path``.

        None when nothing was dated for ``env``'s home and this very ``sys.path`` (no
        entry point was looked for), or the dating found something it cannot date.
        """
        last = cls._last
        path = KsiPaths.from_env(env).cache_dir / CACHE_FILE
        if last is None or last.path != path or last._searched != _searched():
            return None
        return last._key

    @classmethod
    def early(cls, env: Mapping[str, str] | None = None) -> ScanCache:
        """Date the scan now, and let this process's next :meth:`of` use it, once.

        A command asks the cache before it builds its first pydantic model
        (:mod:`ksi_host._pydantic_plugins`) and scans a moment later: dating twice would
        ``stat`` every distribution twice. What was dated is what is then served or kept,
        as when dating and scanning follow each other at once: a change in between makes
        the next command's key differ, so it scans. A different ``sys.path`` or finder
        list by then means a fresh dating.
        """
        ScanCache._early = cache = cls.of(env)
        return cache

    @classmethod
    def drop_early(cls) -> None:
        """Forget an :meth:`early` dating nothing used: it is only as fresh as its command."""
        ScanCache._early = None

    def _kept(self) -> dict[str, Any] | None:
        """The kept scan if it is this ``sys.path``'s (read once per dating)."""
        if self._key is None:
            return None
        if self._raw is _UNREAD:
            self._raw = read_cache(self.path)
        raw = self._raw
        return raw if isinstance(raw, dict) and raw.get("key") == self._key else None

    def candidates(self) -> list[Candidate] | None:
        """The candidates the last scan of this same ``sys.path`` found, or None: scan."""
        raw = self._kept()
        if raw is None:
            return None
        try:
            rows = raw["rows"]
            found = _candidates(rows)
        except (KeyError, TypeError):
            return None
        manifests = (row["manifest"] for row in rows if row["manifest"] is not None)
        if not all(map(os.path.isfile, manifests)):
            return None
        return found

    def pydantic_plugins(self) -> bool | None:
        """Whether a distribution on this same ``sys.path`` declares a pydantic plugin.

        None when no valid kept scan says: ask pydantic's own scan.
        """
        raw = self._kept()
        found = raw.get("pydantic") if raw is not None else None
        return found if isinstance(found, bool) else None

    def keep(self, candidates: Sequence[Candidate], *, pydantic_plugins: bool) -> None:
        """Remember what a scan found, unless the scan cannot be dated."""
        if self._key is None:
            return
        kept = {
            "key": self._key,
            "rows": [_row(c) for c in candidates],
            "pydantic": pydantic_plugins,
        }
        write_cache(self.path, kept)
        self._raw = kept


_UNREAD: Final = object()


def _searched() -> tuple[tuple[str, ...], tuple[object, ...]]:
    """What the scan searches: ``sys.path`` and the finders that list distributions.

    importlib_metadata's own finder, added when it is first imported, reads the folders
    of the standard library's, which it replaces (see :func:`_standard_finder`).
    """
    backport = sys.modules.get("importlib_metadata")
    if backport is None:
        return tuple(sys.path), tuple(sys.meta_path)
    own = backport.MetadataPathFinder
    return tuple(sys.path), tuple(f for f in sys.meta_path if not isinstance(f, own))
