"""What is installed in the environment that runs ksi-host, read once per command."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import importlib_metadata
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from ksi_host import __version__
from ksi_host._discover import ENTRY_POINT_GROUP

__all__ = [
    "HOST_DIST",
    "Environment",
    "InstalledDist",
    "is_editable",
    "record_digest",
    "requirements_of",
]

HOST_DIST: Final = canonicalize_name("ksi-host")


@dataclass(frozen=True)
class InstalledDist:
    """One installed distribution: its name as written, version, requirements and plugins."""

    name: str
    version: str
    requires: tuple[Requirement, ...]
    plugins: tuple[str, ...]
    record: str | None = None
    """A plugin distribution's :func:`record_digest` (others are not read)."""

    @property
    def key(self) -> NormalizedName:
        return canonicalize_name(self.name)

    @property
    def is_plugin(self) -> bool:
        """A plugin distribution offers at least one ``ksi.plugins`` entry point."""
        return bool(self.plugins)


def record_digest(dist: importlib_metadata.IDistribution) -> str:
    """The hash of a distribution's ``RECORD`` (``METADATA`` where an installer wrote none).

    RECORD names the ``.dist-info`` folder (so the version) and holds a hash of every
    file installed, so a reinstall of the same version with other files changes it.
    """
    record = dist.read_text("RECORD") or dist.read_text("METADATA") or ""
    return hashlib.sha256(record.encode()).hexdigest()


def is_editable(dist: importlib_metadata.IDistribution) -> bool:
    """Installed in development mode (``pip install -e``): its code is wherever its author edits it.

    PEP 660's ``direct_url.json`` says so (``dir_info.editable``); its RECORD lists
    only a ``.pth`` or a finder, never that code.
    """
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    info = direct.get("dir_info") if isinstance(direct, dict) else None
    return isinstance(info, dict) and bool(info.get("editable"))


def requirements_of(requires_dist: Iterable[str]) -> tuple[Requirement, ...]:
    """The requirements that apply here: markers evaluated as for a plain install (no extra)."""
    found = []
    for text in requires_dist:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.append(requirement)
    return tuple(found)


@dataclass(frozen=True)
class Environment:
    """Every distribution installed on ``sys.path``, by canonical name (the first one wins)."""

    dists: Mapping[NormalizedName, InstalledDist]

    @classmethod
    def current(cls) -> Environment:
        """Read the environment now; a pip run since the last read is seen."""
        importlib.invalidate_caches()
        dists: dict[NormalizedName, InstalledDist] = {}
        for dist in importlib_metadata.distributions():
            name = dist.metadata["Name"]
            if not name or canonicalize_name(name) in dists:
                continue
            plugins = tuple(
                sorted(ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP)
            )
            dists[canonicalize_name(name)] = InstalledDist(
                name=name,
                version=dist.version,
                requires=requirements_of(dist.requires or ()),
                plugins=plugins,
                record=record_digest(dist) if plugins else None,
            )
        return cls(dists)

    def get(self, name: str) -> InstalledDist | None:
        return self.dists.get(canonicalize_name(name))

    @property
    def host_version(self) -> str:
        host = self.dists.get(HOST_DIST)
        return host.version if host is not None else __version__

    def protected(self) -> frozenset[NormalizedName]:
        """ksi-host and everything it needs, directly or not: never changed, never removed."""
        seen: set[NormalizedName] = set()
        todo = [HOST_DIST]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            dist = self.dists.get(key)
            if dist is not None:
                todo.extend(canonicalize_name(r.name) for r in dist.requires)
        return frozenset(seen)

    def plugin_dists(self) -> tuple[InstalledDist, ...]:
        """The installed plugin distributions (ksi-host's own built-ins are not one), by name."""
        return tuple(
            sorted(
                (d for d in self.dists.values() if d.is_plugin and d.key != HOST_DIST),
                key=lambda d: d.key,
            )
        )

    def dependents(
        self, key: NormalizedName, *, excluding: Iterable[NormalizedName] = ()
    ) -> tuple[tuple[InstalledDist, Requirement], ...]:
        """Installed distributions whose requirements name ``key``, with that requirement."""
        skip = set(excluding)
        return tuple(
            (dist, requirement)
            for dist in sorted(self.dists.values(), key=lambda d: d.key)
            if dist.key not in skip
            for requirement in dist.requires
            if canonicalize_name(requirement.name) == key
        )
