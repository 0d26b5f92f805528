"""Reading and writing a JSON file of ``$KSI_HOME/cache``: never one another user can change.

The caches (:mod:`ksi_host._scan_cache`, :mod:`ksi_host._manifest_cache`) say which
entry points exist and what each manifest declares, so whoever can write a cache file
chooses what the host imports. A cache file, or its folder, that :func:`ksi_host._trust.distrust`
refuses is ignored with a warning that names the fix, as a plugin folder would be; the
command then scans and validates as if there were no cache, so its answer is the same.
Unreadable, damaged or unwritable files are ignored quietly: a cache only saves time.
Where orjson is installed it decodes the files (the kept manifests of a thousand
plugins in half the time), but for a command that imports nothing else (orjson's own
import loads dataclasses, enum, uuid, datetime...); it reads what :mod:`json` writes,
and anything it refuses counts as damaged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ksi_host._json_file import replace_json
from ksi_host._trust import first_distrust

__all__ = ["read_cache", "write_cache"]

logger: Final = logging.getLogger("ksi_host.cache")


def _trusted(path: Path) -> bool:
    found = first_distrust([path.parent, path])
    if found is not None:
        logger.warning("ignoring the cache %s: the %s; %s", path, found.problem, found.hint)
    return found is None


def _decoder(stdlib_only: bool) -> Callable[[bytes], object]:
    """orjson's ``loads`` where installed (CPython) and wanted, else the standard library's."""
    if stdlib_only:
        return json.loads
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


def read_cache(path: Path, *, stdlib_only: bool = False) -> object | None:
    """The JSON in ``path``, or None when it is missing, unreadable, damaged or not trusted.

    ``stdlib_only`` decodes it with :mod:`json` even where orjson is installed.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.debug("ignoring the unreadable cache %s: %s", path, exc)
        return None
    if not _trusted(path):
        return None
    try:
        found: object = _decoder(stdlib_only)(text)
    except ValueError as exc:  # orjson's JSONDecodeError is one too
        logger.debug("ignoring the damaged cache %s: %s", path, exc)
        return None
    return found


def write_cache(path: Path, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON (0600, in a 0700 folder), unless it is not trusted."""
    if not _trusted(path):
        return
    try:
        replace_json(path, data)
    except OSError as exc:
        logger.debug("cannot write the cache %s: %s", path, exc)
