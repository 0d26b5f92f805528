"""``ksi-plugins.lock``: the plugin distributions of an environment, as TOML, read and written.

The format (``lock-version = 1``)::

    # written by `ksi-host lock`; reproduce with `ksi-host sync ksi-plugins.lock`
    lock-version = 1
    ksi-host = "0.1.0"          # the ksi-host that wrote it (informative)

    [[plugin]]
    distribution = "ksi-plugin-hello"   # the name pip installs
    version = "1.0"                     # the exact version
    plugins = ["hello"]                 # its ksi.plugins entry points

Entries are sorted by canonical distribution name, so the same set always gives the
same file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksi_host._manage.environment import InstalledDist
from ksi_host._toml import tomllib
from ksi_host.errors import LockFileError

__all__ = ["LockFile", "LockedPlugin", "read_lock", "render_lock"]


class LockedPlugin(BaseModel):
    """One plugin distribution at one exact version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: str = Field(min_length=1)
    version: str = Field(min_length=1)
    plugins: tuple[str, ...] = ()


class LockFile(BaseModel):
    """The whole lock file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    lock_version: Literal[1] = Field(1, alias="lock-version")
    ksi_host: str = Field(alias="ksi-host")
    plugin: tuple[LockedPlugin, ...] = ()

    def versions(self) -> dict[str, str]:
        """Canonical distribution name -> version."""
        return {canonicalize_name(p.distribution): p.version for p in self.plugin}


def render_lock(dists: Sequence[InstalledDist], host_version: str) -> str:
    """The lock file's text for ``dists`` (sorted, one ``[[plugin]]`` table each)."""
    lines = [
        "# The plugin set of one environment, written by `ksi-host lock`.",
        "# Reproduce it with `ksi-host sync FILE` (docs/MANAGING_PLUGINS.md).",
        "lock-version = 1",
        f"ksi-host = {_string(host_version)}",
    ]
    for dist in sorted(dists, key=lambda d: d.key):
        lines += [
            "",
            "[[plugin]]",
            f"distribution = {_string(dist.name)}",
            f"version = {_string(dist.version)}",
            f"plugins = [{', '.join(map(_string, dist.plugins))}]",
        ]
    return "\n".join(lines) + "\n"


def _string(value: str) -> str:
    """A TOML basic string: JSON's escapes, but no surrogate pairs and DEL escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def read_lock(file: Path) -> LockFile:
    """Read and check a lock file; every problem is a :class:`LockFileError` naming the file."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockFileError(
            file=file,
            what=f"cannot read the lock file: {exc.strerror or exc}",
            hint="write one with `ksi-host lock -o FILE` in the environment to reproduce",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(
            file=file, what=f"the lock file is not TOML: {exc}", hint="fix it or write it again"
        ) from None
    try:
        lock = LockFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'file'}: {err['msg']}" for err in exc.errors()
        )
        raise LockFileError(
            file=file,
            what=f"the lock file does not validate: {problems}",
            hint="see the format in docs/MANAGING_PLUGINS.md, or write it again with "
            "`ksi-host lock`",
        ) from None
    seen: set[str] = set()
    for entry in lock.plugin:
        key = canonicalize_name(entry.distribution)
        if key in seen:
            raise LockFileError(
                file=file,
                what=f"the lock file names {entry.distribution} twice",
                hint="keep one [[plugin]] table per distribution",
            )
        seen.add(key)
    return lock
