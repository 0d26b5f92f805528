"""Whether an installed version meets a requirement, and what to say when ksi-host does not.

One rule for every view: the plan (a plugin whose ``dependencies`` or ``Requires-Dist``
name another ksi-host is a ``host-version`` exclusion) and ``ksi-host install`` (which
refuses such a plugin before pip changes anything) both ask :func:`check_host`, so
they agree on the verdict and word it the same way.

>>> from packaging.requirements import Requirement
>>> check_host(Requirement("ksi-host>=1.0"), host_version="2.0rc1", subject="p", declared_in="")
>>> print(check_host(Requirement("ksi-host>=2"), host_version="1.0", subject="p",
...                  declared_in="its dependencies").message())
p needs ksi-host>=2 (its dependencies), but this is ksi-host 1.0
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.version import InvalidVersion

__all__ = ["HostMismatch", "check_host", "satisfies"]


def satisfies(requirement: Requirement, version: str | None) -> bool:
    """Whether an installed ``version`` meets ``requirement``.

    Pre-releases count, as ``pip check`` has it: ``foo>=1.0`` accepts an installed
    ``foo 2.0rc1``. A version that is not PEP 440 meets nothing.
    """
    if version is None:
        return False
    try:
        return requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return False


@dataclass(frozen=True)
class HostMismatch:
    """A requirement on ksi-host the running host does not meet: who wrote it, and where.

    ``requirement`` is as written, without its environment marker.
    """

    subject: str
    requirement: str
    declared_in: str
    host_version: str

    def message(self) -> str:
        return (
            f"{self.subject} needs {self.requirement} ({self.declared_in}), "
            f"but this is ksi-host {self.host_version}"
        )

    def upgrade_command(self) -> str:
        """The command that installs a ksi-host this requirement accepts, where this one is."""
        return shlex.join([sys.executable, "-m", "pip", "install", "--upgrade", self.requirement])


def check_host(
    requirement: Requirement,
    *,
    host_version: str,
    subject: str,
    declared_in: str,
    written: str | None = None,
) -> HostMismatch | None:
    """Why ksi-host ``host_version`` does not meet ``requirement`` (a requirement on ksi-host).

    ``written`` is the requirement as its author wrote it, for the message.
    """
    if satisfies(requirement, host_version):
        return None
    text = written or f"{requirement.name}{requirement.specifier}"
    return HostMismatch(subject, text, declared_in, host_version)
