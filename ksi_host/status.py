"""A plugin's status as the host reports it: :class:`PluginStatus` and the words in it.

``context.host.status()`` gives a plugin one :class:`PluginStatus` per plugin the host
knows. Its ``status`` is a :data:`Status` word, its ``origin`` an :class:`Origin` and
its ``reason`` a :class:`Reason` whose ``code`` is a :data:`ReasonCode`: the same
values ``ksi-host plugins``, ``doctor`` and ``plugin:list`` show, so a plugin annotates
with these names and ``mypy --strict`` checks what it reads:

>>> failed = PluginStatus(
...     name="db",
...     key="db",
...     version="1.0",
...     origin=Origin("folder", "/srv/plugins/db.py"),
...     status="failed",
...     reason=Reason("startup-failed", "db failed in ksi_startup: the database is down"),
... )
>>> code: ReasonCode = failed.reason.code if failed.reason else "not-running"
>>> code, str(failed.origin)
('startup-failed', 'folder /srv/plugins/db.py')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, final

__all__ = ["Origin", "PluginStatus", "Reason", "ReasonCode", "SourceKind", "Status"]

SourceKind = Literal["path", "folder", "user", "entry-point", "builtin", "object"]

Status = Literal[
    "loadable",
    "excluded",
    "disabled",
    "shadowed",
    "pending",
    "lazy",
    "running",
    "failed",
    "stopped",
    "not-running",
]
"""The one word every view (plugins, events, doctor, plugin:list) uses for a plugin's state.

The plan decides ``loadable``, ``excluded``, ``disabled`` or ``shadowed``; only a
running host knows ``pending``, ``lazy``, ``running``, ``failed`` and ``stopped``; a plugin the
plan would load but a running daemon does not know is ``not-running``
(see docs/PLUGIN_STATUS.md).
"""

ReasonCode = Literal[
    # the plan: decided before any plugin starts
    "disabled",
    "shadowed",
    "untrusted",
    "import-error",
    "not-a-plugin",
    "invalid-metadata",
    "hook-mismatch",
    "unsupported-hook",
    "config-invalid",
    "host-version",
    "missing-dependency",
    "version-conflict",
    "cycle",
    "ambiguous-service",
    "manifest-mismatch",
    "dependency-excluded",
    # a running host
    "context-failed",
    "startup-failed",
    "dependency-failed",
    "shutdown-failed",
    "quarantined",
    "worker-crashed",
    "not-running",
    # warnings: the plugin still loads
    "after-dependency-excluded",
    "duplicate-command",
    "choice-unused",
    "version-mismatch",
]
"""Every reason code, in one place; docs/PLUGIN_STATUS.md says what each means and its fix."""


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from, for every message that mentions it."""

    kind: SourceKind
    location: str
    distribution: str | None = None
    dist_version: str | None = None
    entry_point: str | None = None
    host_requirement: str | None = None
    """The distribution's ``Requires-Dist`` on ksi-host, as written."""

    def __str__(self) -> str:
        if self.distribution:
            version = f" {self.dist_version}" if self.dist_version else ""
            ep = f", entry point {self.entry_point!r}" if self.entry_point else ""
            return f"{self.distribution}{version}{ep}"
        return f"{self.kind} {self.location}"


@dataclass(frozen=True)
class Reason:
    """Why a plugin will not (or no longer does) run; ``cause`` leads to the root cause.

    The resolver also keeps its evidence as data, so a tool (doctor) never has to
    parse ``message``: ``requirement`` is the dependency at fault as declared (name
    and specifier, no marker), ``providers`` the plugins that provide it (the one
    found for ``version-conflict``, all of them for ``ambiguous-service``),
    ``cycle`` the path from this plugin back to itself, ``hook`` the hook at fault
    and ``suggestion`` the hook name it most likely meant, ``path`` and ``line``
    the file (and line) to change, ``key`` the config key at fault, ``differences``
    one line per field where a ``manifest-mismatch`` manifest and the code disagree,
    ``module`` the module an import could not find, and ``frames`` the ``(file, line)``
    of each frame of the traceback, innermost last. They restate ``message``, so they
    take no part in equality.
    """

    code: ReasonCode
    message: str
    hint: str = ""
    cause: Reason | None = None
    traceback: str | None = None
    requirement: str | None = field(default=None, compare=False)
    providers: tuple[str, ...] = field(default=(), compare=False)
    cycle: tuple[str, ...] = field(default=(), compare=False)
    hook: str | None = field(default=None, compare=False)
    suggestion: str | None = field(default=None, compare=False)
    path: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)
    key: str | None = field(default=None, compare=False)
    differences: tuple[str, ...] = field(default=(), compare=False)
    module: str | None = field(default=None, compare=False)
    frames: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    @property
    def root(self) -> Reason:
        """The last reason of the ``cause`` chain: the one to fix first."""
        reason = self
        while reason.cause is not None:
            reason = reason.cause
        return reason


@final
@dataclass(frozen=True)
class PluginStatus:
    """One plugin as the running host sees it: what :meth:`HostView.status` lists.

    - ``name``: the plugin's name (``PluginMetadata.name``); ``key``: its canonical form;
    - ``version``: its ``PluginMetadata.version`` (``None`` when it was never described);
    - ``origin``: where it was found (``origin.kind``: ``"entry-point"``, ``"folder"``,
      ``"builtin"``, ...; ``origin.location``; ``origin.distribution``);
    - ``status``: its status word, the same every view uses (``docs/PLUGIN_STATUS.md``):
      ``"pending"``, ``"lazy"`` (not imported until its first event), ``"running"``,
      ``"failed"``, ``"stopped"``, ``"excluded"``, ``"disabled"`` or ``"shadowed"``;
    - ``reason``: why it does not run, ``None`` while it does: ``reason.code`` (a
      reason code such as ``"startup-failed"``), ``reason.message``, ``reason.hint``;
    - ``stalls``: how often it blocked the event loop past a call's deadline;
    - ``worker``: an isolated plugin's worker (``{"pid": ..., "restarts": ...}``), else ``None``.
    """

    name: str
    key: str
    version: str | None
    origin: Origin
    status: Status
    reason: Reason | None = None
    stalls: int = 0
    worker: dict[str, Any] | None = None
