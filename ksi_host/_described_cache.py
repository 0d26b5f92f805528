"""Installed plugins without a manifest, described once per change, not imported by every command.

Importing a plugin to learn what it says about itself is most of what listing a
thousand plugins without manifests costs. A plugin's description (its metadata,
capabilities, hooks and ``config_model``: what a manifest holds, built as ``ksi-host
manifest`` builds one, :meth:`~ksi_host._manifest.PluginManifest.of_code`) is a function
of its code, so ``plugins`` and ``events`` keep the description of each plugin of an
installed distribution that imported and passed the host's checks in
``$KSI_HOME/cache/described.json``, and describe it from there next time, without
importing it, as a plugin with a ``startup`` manifest is described. An entry is used only
while all of these are as they were when it was kept:

- the whole environment: the key of the entry-point scan (:mod:`ksi_host._scan_cache`),
  which dates every distribution on ``sys.path``. Any install, upgrade, reinstall or
  uninstall drops every entry, since an import can depend on any other distribution
  (uninstalling what a plugin imports makes its import error visible again);
- the plugin's own code: its distribution's name and version, its entry point, and the
  identity (device, inode, size, modification and change time) of its RECORD and of
  every file RECORD lists beside the ``.dist-info`` folder (its top-level package, and
  any other module or data the distribution installed there; not ``__pycache__``, not
  scripts installed elsewhere), and of their folders (so a file added counts too);
- the rules that produced it: ksi-host's version, pydantic's and packaging's, and the
  stats of ksi-host's modules that describe and vet a plugin (:mod:`ksi_host._cache_rules`);
- its config: a plugin whose ``config_model`` has a section in the config is imported,
  since the section is checked against the model.

Never kept, so always imported: a plugin that fails to import or to pass a check (every
exclusion is worked out again), an editable install (``direct_url.json`` says
``dir_info.editable``) or any plugin whose imported modules are not the files its
distribution's RECORD lists, plugin files and folders (``--plugin-path``, ``~/.ksi/plugins``),
and anything that cannot be dated: a scan that cannot be kept, a distribution without
a single ``.dist-info`` with a RECORD, a file changed later than
:data:`~ksi_host._stamps.SETTLE_SECONDS` before the plan began. The daemon and doctor never use it:
they import every plugin anyway. ``KSI_DESCRIBED_CACHE=0`` turns it off. The file holds
data only (JSON); an unreadable or unwritable one is ignored, and the answer is the
same either way.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import importlib_metadata
from packaging.utils import canonicalize_name

from ksi_host import (
    _config,
    _describe,
    _event_hooks,
    _manifest,
    _stamps,
    _vet,
    events,
    hookspecs,
    plugin_base,
    plugin_manager,
    plugin_types,
)
from ksi_host._cache_file import read_cache, write_cache
from ksi_host._cache_rules import cache_rules
from ksi_host._manage.environment import is_editable
from ksi_host._manifest import PluginManifest
from ksi_host._manifest_cache import as_data, from_data
from ksi_host._paths import KsiPaths
from ksi_host._plan import NOT_IMPORTED, Candidate, PluginSpec
from ksi_host._scan_cache import ScanCache
from ksi_host._stamps import identity
from ksi_host._switches import switched_off
from ksi_host.status import Origin

__all__ = ["CACHE_FILE", "SWITCH", "DescribedCache"]

CACHE_FILE: Final = "described.json"
SWITCH: Final = "KSI_DESCRIBED_CACHE"
"""``0`` (or ``off``, ``false``, ``no``) turns the cache off: every plugin is imported."""
_FORMAT: Final = 1

_Listings = dict[str, dict[str, list[tuple[str, str]]]]
"""The ``.dist-info`` folders of each folder seen, listed once per :meth:`DescribedCache.keep`."""


def _rules() -> str:
    modules = (_describe, _manifest, _vet, _config, _event_hooks, plugin_manager, plugin_types)
    own = sys.modules[__name__]
    return cache_rules(_FORMAT, (*modules, plugin_base, hookspecs, events, own))


def _name(origin: Origin) -> str:
    """An entry's name: the distribution, its version and the entry point."""
    return f"{origin.distribution}=={origin.dist_version}:{origin.entry_point}={origin.location}"


class DescribedCache:
    """The kept descriptions of one ``KSI_HOME``: :meth:`read`, :meth:`keep`, :meth:`save`.

    ``sections`` are the config's plugin sections by canonical plugin name. Made (by
    :meth:`load`) before the plan describes anything.
    """

    def __init__(
        self,
        path: Path,
        sections: Mapping[str, Any],
        stamp: dict[str, str] | None = None,
        entries: dict[str, Any] | None = None,
    ) -> None:
        self.path: Final = path
        self._sections: Final = sections
        self._stamp: Final = stamp
        self._old: Final[dict[str, Any]] = entries or {}
        self._new: dict[str, Any] = {}
        # Made before the plan imports anything: a file it keeps must have been this
        # way since before then, or an edit made after an import (however long the
        # plan takes) could be dated as the code that import read.
        self._settled: Final = int((time.time() - _stamps.SETTLE_SECONDS) * 1e9)

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, sections: Mapping[str, Any] | None = None
    ) -> DescribedCache:
        """The cache for the scan this process just made or read; inert when it cannot be used."""
        env = os.environ if env is None else env
        path = KsiPaths.from_env(env).cache_dir / CACHE_FILE
        sections = sections or {}
        scan = ScanCache.last_key(env)
        if scan is None or switched_off(env, SWITCH):
            return cls(path, sections)
        stamp = {"scan": scan, "rules": _rules()}
        raw = read_cache(path)
        if isinstance(raw, dict) and all(raw.get(k) == v for k, v in stamp.items()):
            entries = raw.get("entries")
            if isinstance(entries, dict):
                return cls(path, sections, stamp, entries)
        return cls(path, sections, stamp)

    def read(self, candidate: Candidate) -> PluginSpec | None:
        """``candidate`` described from its kept description, or None: import it."""
        origin = candidate.origin
        if self._stamp is None or origin.kind != "entry-point" or candidate.manifest is not None:
            return None
        name = _name(origin)
        kept = self._old.get(name)
        if not isinstance(kept, dict):
            return None
        try:
            if any(identity(file) != then for file, then in kept["files"]):
                return None
            manifest, metadata, capabilities = from_data(kept)
            hooks = tuple(kept["hooks"])
        except (KeyError, TypeError, ValueError, AttributeError, OSError):
            return None  # damaged, or a file is gone: import it
        if manifest.config_model is not None and self._sections.get(metadata.key) is not None:
            return None
        self._new[name] = kept
        return PluginSpec(
            plugin=NOT_IMPORTED,
            metadata=metadata,
            capabilities=capabilities,
            origin=origin,
            hooks=hooks,
            manifest=manifest,
            candidate=candidate,
        )

    def kept_files(self, candidate: Candidate) -> list[str] | None:
        """The files whose identity dates ``candidate``'s kept description, or None: none kept.

        What a kept answer of ``plugins`` (:mod:`ksi_host._answer_cache`) must date for
        a plan that described ``candidate`` from here.
        """
        kept = self._old.get(_name(candidate.origin)) if self._stamp is not None else None
        try:
            files = [file for file, _ in kept["files"]] if isinstance(kept, dict) else None
        except (KeyError, TypeError, ValueError):
            return None
        return files if files and all(type(file) is str for file in files) else None

    def keep(self, specs: Iterable[PluginSpec]) -> None:
        """Keep each plugin of ``specs`` that was imported, passed the checks, and can be dated."""
        if self._stamp is None:
            return
        listings: _Listings = {}
        for spec in specs:
            if not spec.imported or spec.origin.kind != "entry-point" or spec.manifest is not None:
                continue
            manifest = PluginManifest.of_code(
                spec.plugin, spec.metadata, spec.capabilities, hooks=spec.hooks
            )
            if manifest.config_model is not None and self._sections.get(spec.key) is not None:
                continue
            files = _code_files(spec.origin, listings)
            if files is None:
                continue
            try:
                dated = [(file, identity(file)) for file in files]
            except OSError:
                continue
            if any(max(now[3:]) > self._settled for _, now in dated):
                continue  # changed since just before the plan: it may not be what was imported
            self._new[_name(spec.origin)] = {
                "files": dated,
                "hooks": list(spec.hooks),
                **as_data(manifest, spec.metadata, spec.capabilities),
            }

    def save(self) -> None:
        """Keep what this plan read or kept (only that), when it differs from what was loaded."""
        if self._stamp is None or self._new == self._old:
            return
        write_cache(self.path, {**self._stamp, "entries": self._new})


def _code_files(origin: Origin, listings: _Listings) -> list[str] | None:
    """The distribution's own files and folders beside its metadata, as its RECORD lists them.

    None when they cannot be told, or the modules the plugin was imported from are not
    the files its RECORD lists (an editable install, a copy elsewhere on ``sys.path``).
    Strings, not paths: this runs for every plugin a plan imports.
    """
    module = origin.location.partition(":")[0].strip()
    parts = module.split(".")
    file = getattr(sys.modules.get(module), "__file__", None)
    if not isinstance(file, str) or origin.distribution is None:
        return None
    root = os.path.abspath(file)  # noqa: PTH100
    for _ in range(len(parts) + (os.path.basename(root) == "__init__.py")):  # noqa: PTH119
        root = os.path.dirname(root)  # noqa: PTH120
    listing = listings.get(root)
    if listing is None:
        listing = listings[root] = _dist_infos(root)
    info = _dist_info(listing, origin.distribution, origin.dist_version)
    if info is None or _editable(info):
        return None
    try:
        with open(f"{info}/RECORD", encoding="utf-8") as rows:  # noqa: PTH123
            record = rows.read()
    except (OSError, UnicodeDecodeError):
        return None
    # The .dist-info folder's own files are dated by the scan's key.
    metadata = f"{os.path.basename(info)}/"  # noqa: PTH119
    listed = {
        row[0]
        for row in csv.reader(record.splitlines())
        if row and not row[0].startswith(("../", "/", metadata))
    }
    prefix = f"{root}{os.sep}"
    for depth in range(1, len(parts) + 1):
        loaded = getattr(sys.modules.get(".".join(parts[:depth])), "__file__", None)
        if loaded is None:
            continue
        loaded = os.path.abspath(loaded)  # noqa: PTH100
        if not loaded.startswith(prefix) or loaded[len(prefix) :] not in listed:
            return None
    code = {row for row in listed if "__pycache__/" not in row}
    folders: set[str] = set()
    for row in code:
        folder = row.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return [f"{info}/RECORD", *(f"{prefix}{row}" for row in sorted(code | folders))]


def _editable(info: str) -> bool:
    """Whether the distribution is an editable install (most have no ``direct_url.json``)."""
    if not os.path.isfile(f"{info}/direct_url.json"):  # noqa: PTH113
        return False
    return is_editable(importlib_metadata.PathDistribution(Path(info)))


def _dist_info(
    listing: Mapping[str, list[tuple[str, str]]], distribution: str, version: str | None
) -> str | None:
    """The one ``.dist-info`` folder of ``distribution`` at ``version`` in a folder, if one."""
    found = listing.get(canonicalize_name(distribution), [])
    matching = [path for path, at in found if at == version]
    return matching[0] if len(found) == 1 and len(matching) == 1 else None


def _dist_infos(root: str) -> dict[str, list[tuple[str, str]]]:
    """Every ``.dist-info`` folder of ``root``, by canonical name: (path, version). One listing."""
    found: dict[str, list[tuple[str, str]]] = {}
    try:
        names = os.listdir(root)  # noqa: PTH208
    except OSError:
        return found
    for name in names:
        if name.endswith(".dist-info"):
            project, _, version = name.removesuffix(".dist-info").partition("-")
            found.setdefault(canonicalize_name(project), []).append((f"{root}/{name}", version))
    return found
