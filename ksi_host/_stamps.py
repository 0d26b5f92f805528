"""How the caches date what they read: one rule for every kept scan, manifest and answer.

A file is dated by its inode, size, modification and change times in nanoseconds:
writing, replacing or ``touch``-ing it changes at least one, and no tool can set a
change time back. Anything changed less than :data:`SETTLE_SECONDS` before the dating
is :data:`HOT`: file times are coarse (a second change in the same tick leaves the time
as it was, and an install may still be under way), so it cannot date a kept answer.
Only the standard library is imported: a command dates its caches before it imports
anything heavier.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

__all__ = ["HOT", "SETTLE_SECONDS", "Stamp", "file_stamp", "identity", "source_stamps", "stamp"]

SETTLE_SECONDS: Final = 2.0
HOT: Final = "hot"

Stamp = tuple[int, int, int, int] | str
"""Inode, size, modification and change times (ns), or :data:`HOT`."""


def stamp(info: os.stat_result, settled: int) -> Stamp:
    """``info`` as a stamp, or :data:`HOT` if it changed after ``settled`` (ns since the epoch)."""
    if info.st_mtime_ns > settled or info.st_ctime_ns > settled:
        return HOT
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def file_stamp(path: str, settled: int) -> Stamp | None:
    """``path``'s stamp (symlinks followed), or None when there is nothing there."""
    try:
        info = os.stat(path)  # noqa: PTH116
    except FileNotFoundError:
        return None
    return stamp(info, settled)


def identity(path: str) -> list[int]:
    """Device, inode, size, modification and change times: a file's version, however recent.

    Raises :class:`OSError`.
    """
    info = os.stat(path)  # noqa: PTH116
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def source_stamps(files: Iterable[str]) -> list[str]:
    """Each source file that holds a kept answer's rules, with its inode, size and times.

    An edited checkout of ksi-host changes them; a missing file is left out.
    """
    stamps = []
    for file in files:
        try:
            info = os.stat(file)  # noqa: PTH116
        except OSError:
            continue
        stamps.append(f"{file}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}")
    return stamps
