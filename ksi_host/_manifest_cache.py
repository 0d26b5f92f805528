"""Each ``ksi-plugin.toml`` parsed and validated once per change, not once per command.

With a thousand plugins installed, reading their manifests is most of what planning from
manifests costs: TOML parsing, then validating every field (each dependency parsed as a
requirement). The files change only when a plugin is installed, upgraded or edited, so
the validated fields of each are kept in ``$KSI_HOME/cache/manifests.json``, keyed by:

- the file's identity: device, inode, size, modification and change time in
  nanoseconds (writing, replacing or ``touch``-ing the file changes at least one, and
  pip writes a new file on every install), and
- the rules that validated it: the versions of ksi-host, pydantic and packaging, and
  the stats of ksi-host's modules that hold those rules (an edited checkout counts).

Anything else is read and validated again; so is a manifest that did not validate (it
is never kept). The cache holds data only (JSON, rebuilt into the models without code
running); an unreadable or unwritable cache is ignored, and the plan is the same
either way.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from ksi_host import _manifest as manifest_module
from ksi_host import events, plugin_types
from ksi_host._cache_file import read_cache, write_cache
from ksi_host._cache_rules import cache_rules
from ksi_host._manifest import PluginManifest
from ksi_host._paths import KsiPaths
from ksi_host._stamps import identity
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__all__ = ["CACHE_FILE", "ManifestCache", "as_data", "from_data"]

CACHE_FILE: Final = "manifests.json"
_FORMAT: Final = 2
_NONE: Final = object()

_Model = TypeVar("_Model", PluginManifest, PluginMetadata, PluginCapabilities)


Read = tuple[PluginManifest, PluginMetadata, PluginCapabilities]


def _rules() -> str:
    """What validated the cached fields: a change to any of it empties the cache."""
    return cache_rules(_FORMAT, (manifest_module, plugin_types, events))


def _tuples(fields: Mapping[str, Any]) -> dict[str, Any]:
    """JSON's lists back into the tuples the models hold."""
    return {name: tuple(value) if type(value) is list else value for name, value in fields.items()}


def _changed(dumped: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``dumped`` whose value is not the manifest's (most are the same)."""
    return {name: value for name, value in dumped.items() if manifest.get(name, _NONE) != value}


def as_data(
    manifest: PluginManifest, metadata: PluginMetadata, capabilities: PluginCapabilities
) -> dict[str, Any]:
    """The validated fields as JSON data, for :func:`from_data` to rebuild without validating.

    The metadata and capabilities restate the manifest's fields, normalised: only the
    values normalising changed are kept beside the manifest's, which halves the file.
    """
    fields = manifest.model_dump(mode="json")
    return {
        "manifest": fields,
        "metadata": _changed(metadata.model_dump(mode="json"), fields),
        "capabilities": _changed(capabilities.model_dump(mode="json"), fields),
    }


def from_data(kept: Mapping[str, Any]) -> Read:
    """What :func:`as_data` kept; raises KeyError, TypeError or AttributeError if it is damaged."""
    fields = _tuples(kept["manifest"])
    return (
        _rebuilt(PluginManifest, fields, {}),
        _rebuilt(PluginMetadata, fields, kept["metadata"]),
        _rebuilt(PluginCapabilities, fields, kept["capabilities"]),
    )


def _rebuilt(model: type[_Model], fields: Mapping[str, Any], changed: Mapping[str, Any]) -> _Model:
    """``model`` with its fields' values from ``fields`` but ``changed``, not validated again.

    A copy of a placeholder instance with every field replaced is what
    ``model_construct`` makes (same fields, same order, all set), at half its cost (it
    looks each field's default and alias up). Raises KeyError when a field is missing
    or ``changed`` names one ``model`` does not have.
    """
    empty: _Model
    names: frozenset[str]
    empty, names = _empty(model)
    update = {name: fields[name] for name in names}
    if changed:
        update.update(_tuples(changed))
        if len(update) != len(names):
            raise KeyError(next(iter(update.keys() - names)))
    return empty.model_copy(update=update)


@functools.cache
def _empty(model: type[_Model]) -> tuple[_Model, frozenset[str]]:
    """An instance with every field set to None, in order, and the fields' names.

    The instance is never handed out, only its copies.
    """
    names = tuple(model.model_fields)
    placeholders: dict[str, Any] = dict.fromkeys(names)
    return model.model_construct(**placeholders), frozenset(names)


class ManifestCache:
    """The validated manifests of one ``KSI_HOME``: read by :meth:`load`, kept by :meth:`save`."""

    def __init__(self, path: Path, entries: dict[str, Any] | None = None) -> None:
        self.path: Final = path
        self._rules: Final = _rules()
        self._old: Final[dict[str, Any]] = entries or {}
        self._new: dict[str, Any] = {}

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> ManifestCache:
        """The cache of ``env``'s ``KSI_HOME``; empty when missing, unreadable or stale."""
        path = KsiPaths.from_env(env).cache_dir / CACHE_FILE
        cache = cls(path)
        raw = read_cache(path)
        if isinstance(raw, dict) and raw.get("rules") == cache._rules:
            entries = raw.get("entries")
            if isinstance(entries, dict):
                return cls(path, entries)
        return cache

    def read(self, file: Path) -> Read:
        """``file``'s manifest, metadata and capabilities: kept ones if the file is unchanged.

        Raises what :meth:`PluginManifest.read` raises, and :class:`OSError`.
        """
        key = str(file)
        stamp = identity(key)
        kept = self._old.get(key)
        if isinstance(kept, dict) and kept.get("identity") == stamp:
            try:
                found = from_data(kept)
            except (KeyError, TypeError, AttributeError):
                pass  # a damaged entry: read the file instead
            else:
                self._new[key] = kept
                return found
        manifest, metadata, capabilities = PluginManifest.read(
            file.read_text(encoding="utf-8"), where=str(file)
        )
        self._new[key] = {"identity": stamp, **as_data(manifest, metadata, capabilities)}
        return manifest, metadata, capabilities

    def save(self) -> None:
        """Keep what this plan read (and only that), when it differs from what was loaded."""
        if self._new == self._old:
            return
        write_cache(self.path, {"rules": self._rules, "entries": self._new})
