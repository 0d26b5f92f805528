"""Whether a file the host reads may be trusted: one rule for ``run``, ``doctor`` and every view.

Code in a plugin folder runs as the daemon's user, so anyone who can change it can
act as that user. A path is refused when, after resolving symlinks, it (or the
folder holding it) can be written by another user (group or other write bit, a
sticky folder included) or is owned by a user other than the daemon's or root.
Paths under ``[host] trust_paths`` are accepted as they are: the operator's explicit
opt-in. :func:`distrust` checks any one path, so the same rule can guard config
files and databases as well as plugin code.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> distrust(folder) is None
True
>>> folder.chmod(0o777)
>>> distrust(folder).fix.startswith("chmod go-w ")
True
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["TRUST_SETTING", "Distrust", "TrustPolicy", "distrust", "first_distrust"]

TRUST_SETTING: Final = "[host] trust_paths"
_WRITE_BITS: Final = stat.S_IWGRP | stat.S_IWOTH


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@dataclass(frozen=True)
class TrustPolicy:
    """Who the host runs as, and the paths the operator trusts whatever their owner and mode."""

    trusted: tuple[Path, ...] = ()
    uid: int = field(default_factory=os.geteuid)

    @classmethod
    def of(cls, trust_paths: Iterable[str | Path] = ()) -> TrustPolicy:
        """A policy for this process's user, trusting ``trust_paths`` (``~`` expanded)."""
        return cls(tuple(Path(p).expanduser().resolve() for p in trust_paths))

    def trusts(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.trusted)


@dataclass(frozen=True)
class Distrust:
    """Why ``path`` is not trusted: its owner and mode, and the command that fixes it."""

    path: Path
    real: Path
    owner: int
    mode: int
    uid: int

    @property
    def writable_by(self) -> str | None:
        """Who else can write it, or None."""
        others = self.mode & _WRITE_BITS
        if others == _WRITE_BITS:
            return "its group and all users"
        if others:
            return "its group" if others == stat.S_IWGRP else "all users"
        return None

    @property
    def foreign_owner(self) -> bool:
        return self.owner not in (self.uid, 0)

    @property
    def problem(self) -> str:
        """What is wrong, with the owner and mode as ``ls -l`` would show them."""
        parts = []
        if self.writable_by:
            parts.append(f"writable by {self.writable_by}")
        if self.foreign_owner:
            allowed = "root" if self.uid == 0 else f"{_user(self.uid)} or root"
            parts.append(f"owned by {_user(self.owner)}, not by {allowed}")
        via = f" (a symlink to {self.real})" if self.real != self.path.absolute() else ""
        kind = "folder" if stat.S_ISDIR(self.mode) else "file"
        return (
            f"{kind} {self.path}{via} is {' and '.join(parts)} "
            f"(owner {_user(self.owner)}, mode {stat.filemode(self.mode)} {self.mode & 0o7777:o})"
        )

    @property
    def fix(self) -> str:
        """The commands that make the path safe: take write access away, and take it over."""
        quoted = shlex.quote(str(self.real))
        commands = []
        if self.writable_by:
            commands.append(f"chmod go-w {quoted}")
        if self.foreign_owner:
            commands.append(f"chown {shlex.quote(_user(self.uid))} {quoted}")
        return " && ".join(commands)

    @property
    def hint(self) -> str:
        """The fix, and the explicit opt-in for an operator who means it."""
        return (
            f"run `{self.fix}`, or, if you trust whoever can change it, "
            f'add it to {TRUST_SETTING} = ["{self.real}"] in the config'
        )


def distrust(path: Path, policy: TrustPolicy | None = None) -> Distrust | None:
    """Why ``path`` (symlinks resolved) is not trusted, or None when it is (or does not exist)."""
    policy = policy or TrustPolicy()
    real = path.resolve()
    if policy.trusts(real):
        return None
    try:
        info = real.stat()
    except OSError:
        return None
    found = Distrust(path, real, info.st_uid, info.st_mode, policy.uid)
    return found if found.writable_by or found.foreign_owner else None


def first_distrust(paths: Sequence[Path], policy: TrustPolicy | None = None) -> Distrust | None:
    """The first of ``paths`` that is not trusted, each checked once."""
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        found = distrust(path, policy)
        if found is not None:
            return found
    return None
