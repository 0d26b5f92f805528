"""Why a plugin-set command refused, as data: the problems, and the command that would work."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ksi_host._manage.checks import Problem
from ksi_host.errors import KsiError

__all__ = ["ChangeRefused", "HostPackage", "LockFileError", "NotInstalled"]


class ChangeRefused(KsiError):
    """An install, uninstall or sync that would break ksi-host or an installed plugin.

    Nothing was changed. ``problems`` says which package and which requirement;
    ``suggestions`` are commands that would work instead.
    """

    reference = "change-refused"

    def __init__(
        self,
        *,
        action: str,
        problems: Sequence[Problem],
        suggestions: Sequence[str] = (),
        forceable: bool = True,
    ) -> None:
        self.action = action
        self.problems = tuple(problems)
        self.suggestions = tuple(suggestions)
        self.forceable = forceable
        lines = "\n".join(f"    - {problem.message()}" for problem in self.problems)
        ways = [f"`{command}`" for command in self.suggestions]
        if forceable:
            ways.append("add --force to do it anyway (the host or those plugins may then fail)")
        super().__init__(
            what=f"refusing to {action}; nothing was changed:\n{lines}",
            where="the environment of " + shlex.quote(sys.executable),
            hint="; or ".join(ways) if ways else None,
        )


class NotInstalled(KsiError):
    """``uninstall`` of a distribution that is not installed here."""

    reference = "not-installed"

    def __init__(self, *, names: Sequence[str], plugins: Sequence[str]) -> None:
        self.names = tuple(names)
        known = ", ".join(plugins) or "none"
        super().__init__(
            what=f"not installed: {', '.join(self.names)}; nothing was changed",
            where="the environment of " + shlex.quote(sys.executable),
            hint=f"name a distribution as pip does; the plugin distributions here are: {known}",
        )


class LockFileError(KsiError):
    """A lock file that cannot be read, or a sync that did not reproduce it."""

    reference = "lock-file"

    def __init__(self, *, file: Path, what: str, hint: str) -> None:
        self.file = file
        super().__init__(what=what, where=str(file), hint=hint)


class HostPackage(KsiError):
    """``uninstall`` of ksi-host or a distribution it needs: never done, even with --force."""

    reference = "host-package"

    def __init__(self, *, name: str, needed_by: str | None) -> None:
        self.name = name
        self.needed_by = needed_by
        why = "it is ksi-host itself" if needed_by is None else f"{needed_by}"
        super().__init__(
            what=f"refusing to uninstall {name}: {why}; nothing was changed",
            where="the environment of " + shlex.quote(sys.executable),
            hint="ksi-host uninstall removes plugins only; to remove ksi-host and what it "
            "needs, use pip itself (`pip uninstall ksi-host`)",
        )
