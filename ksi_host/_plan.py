"""Plain data handed from stage to stage: discover -> describe -> resolve -> load.

Every value here is frozen, so a stage can only pass on a new value, never change
the one it was given. The words a plugin also reads (:class:`~ksi_host.Origin`,
:class:`~ksi_host.Reason`, :data:`~ksi_host.Status`, :data:`~ksi_host.ReasonCode`) are
public and live in :mod:`ksi_host.status`; the plan uses them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from ksi_host._manifest import activates_lazily
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from ksi_host.status import Origin, Reason, ReasonCode, SourceKind, Status

if TYPE_CHECKING:
    from ksi_host._manifest import PluginManifest

__all__ = [
    "FAULTS",
    "NOT_IMPORTED",
    "Candidate",
    "Exclusion",
    "LoadPlan",
    "Origin",
    "PlanWarning",
    "PluginSpec",
    "Reason",
    "ReasonCode",
    "SourceKind",
    "Status",
    "exclusion_status",
]

FAULTS: Final[frozenset[Status]] = frozenset({"excluded", "failed", "not-running"})
"""The statuses of a plugin that should run and does not: ``plugins`` (and ``--graph``) exit 1."""


@dataclass(frozen=True)
class Candidate:
    """Something that may be a plugin, found but not imported yet.

    Exactly one of ``module`` (a dotted module name), ``file`` (a ``.py`` file or a
    package's ``__init__.py``), ``entry_point`` (an entry point value such as
    ``pkg.mod:plugin``) or ``plugin`` (the object itself, as ``ksi_host.testing``
    hands it over) says how to load it. ``disabled_by`` names the setting that
    turned it off, so it is reported instead of imported. ``scanned`` is true for a
    file found by listing a folder, which may be a helper module rather than a plugin.
    ``manifest`` is the ``ksi-plugin.toml`` its distribution ships for it, read
    instead of importing it. ``dist_info`` is an entry point's distribution's metadata
    folder as the scan found it, where the host reads the identity of its code
    (:func:`ksi_host._reload.code_stamps`) without looking the distribution up again.
    """

    name_hint: str
    origin: Origin
    module: str | None = None
    file: Path | None = None
    entry_point: str | None = None
    disabled_by: str | None = None
    scanned: bool = False
    plugin: object = None
    manifest: Path | None = None
    dist_info: str | None = None

    @property
    def target(self) -> str:
        """What to import, as a user would type it: entry point value, file or module."""
        if self.entry_point is not None:
            return self.entry_point
        if self.file is not None:
            return str(self.file)
        return str(self.module)


def exclusion_status(reason: Reason) -> Status:
    """The status word of a plugin the plan leaves out: the user's choice, precedence, or not."""
    if reason.code in ("disabled", "shadowed"):
        return "disabled" if reason.code == "disabled" else "shadowed"
    return "excluded"


@dataclass(frozen=True)
class PlanWarning:
    """Something the operator should know about plugins that still load (``plugins`` names)."""

    code: ReasonCode
    message: str
    hint: str = ""
    plugins: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


class _NotImported:
    def __repr__(self) -> str:
        return "NOT_IMPORTED"


NOT_IMPORTED: Final = _NotImported()
"""``PluginSpec.plugin`` of a plugin described by its manifest, until the host imports it."""


@dataclass(frozen=True)
class PluginSpec:
    """A plugin whose metadata validated: imported, or read from its ``ksi-plugin.toml``.

    ``hooks`` are the hooks it implements; ``candidate`` is what it was described
    from. A spec read from a manifest keeps the manifest, imports its candidate,
    and its ``plugin`` is :data:`NOT_IMPORTED` until
    :func:`ksi_host._describe.import_described` runs.
    """

    plugin: object
    metadata: PluginMetadata
    capabilities: PluginCapabilities
    origin: Origin
    hooks: tuple[str, ...] = ()
    manifest: PluginManifest | None = None
    candidate: Candidate | None = None

    @property
    def imported(self) -> bool:
        return self.plugin is not NOT_IMPORTED

    @property
    def lazy(self) -> bool:
        """Whether the host imports it on its first event instead of at start-up."""
        if self.manifest is None:
            return False
        return activates_lazily(self.manifest.activation, self.capabilities, self.hooks)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> str:
        return self.metadata.key

    @property
    def version(self) -> str | None:
        return self.metadata.version or self.origin.dist_version


@dataclass(frozen=True)
class Exclusion:
    """A plugin that was found but will not load, and why."""

    name: str
    origin: Origin
    reason: Reason
    spec: PluginSpec | None = None

    @classmethod
    def shadowed(cls, spec: PluginSpec, *, by: PluginSpec) -> Exclusion:
        """``spec`` is the same plugin as ``by``, which came from a source of higher precedence."""
        reason = Reason(
            "shadowed",
            f"{spec.name} from {spec.origin} is shadowed by {by.name} from {by.origin}",
            "sources are searched in this order: explicit paths, KSI_PLUGIN_PATH, "
            "~/.ksi/plugins, entry points, built-ins; remove the copy you do not want",
        )
        return cls(spec.name, spec.origin, reason, spec)


@dataclass(frozen=True)
class LoadPlan:
    """The resolver's answer: what loads, in which order, and what does not, with reasons.

    ``requires`` maps each loadable plugin's key to the keys of the plugins it
    must start after (its resolved dependencies and present ``after_dependencies``);
    ``needs`` to the ones it cannot run without (its dependencies only), when it
    differs from ``requires``. ``commands`` maps a command several plugins declare
    to the name of the one chosen to answer it (``[host] commands``).
    """

    order: tuple[PluginSpec, ...]
    excluded: tuple[Exclusion, ...] = ()
    requires: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[PlanWarning, ...] = ()
    needs: Mapping[str, tuple[str, ...]] | None = None
    commands: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def hard_needs(self, key: str) -> tuple[str, ...]:
        """The keys ``key`` cannot run without: its dependencies, not its after-dependencies."""
        needs = self.requires if self.needs is None else self.needs
        return needs.get(key, ())

    def dependents(self, key: str) -> tuple[str, ...]:
        """Keys of the plugins that need ``key``, directly or not, in load order."""
        affected = {key}
        for spec in self.order:
            if any(dep in affected for dep in self.hard_needs(spec.key)):
                affected.add(spec.key)
        return tuple(spec.key for spec in self.order if spec.key in affected - {key})
