"""Import each candidate and read what it says about itself: the one place plugin code runs.

A candidate whose distribution ships a ``ksi-plugin.toml`` is described from that
file instead, without importing it; :func:`import_described` imports it later (the
host does, at start-up or on a lazy plugin's first event) and checks that the code
still says what the manifest says. For ``plugins`` and ``events``, an installed
plugin without a manifest may be described from what an earlier plan kept of it
(:mod:`ksi_host._described_cache`), without importing it. Every way a candidate can
fail (it does not import, raises while importing, has no ``plugin``, is not a plugin,
its metadata or manifest does not validate) becomes an :class:`~ksi_host._plan.Exclusion` with the
traceback kept, and the others go on.
When two candidates turn out to be the same plugin, the first (by source
precedence) wins and the other is kept as ``shadowed``, naming the winner.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Final

from packaging.version import InvalidVersion, Version

from ksi_host._discover import ENTRY_POINT_GROUP, PLUGIN_ATTRIBUTE
from ksi_host._folder_imports import add_folder, import_own_name, is_helper
from ksi_host._manifest import PluginManifest, regenerate_command
from ksi_host._manifest_cache import ManifestCache
from ksi_host._plan import (
    NOT_IMPORTED,
    Candidate,
    Exclusion,
    Origin,
    PlanWarning,
    PluginSpec,
    Reason,
)
from ksi_host._report import NullReporter, Reporter
from ksi_host._trust import TrustPolicy, first_distrust
from ksi_host.errors import InvalidManifest, InvalidPluginMetadata, KsiError
from ksi_host.plugin_manager import hook_names
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

if TYPE_CHECKING:
    from ksi_host._described_cache import DescribedCache

__all__ = ["Described", "code_paths", "describe", "file_module_name", "import_described"]

_MISSING: Final = object()
SLOW_IMPORT_SECONDS: Final = 5.0

logger: Final = logging.getLogger("ksi_host.describe")


@dataclass(frozen=True)
class Described:
    """The candidates that are plugins, the ones that are not (with why), and warnings."""

    specs: tuple[PluginSpec, ...]
    excluded: tuple[Exclusion, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()


def describe(
    candidates: Iterable[Candidate],
    reporter: Reporter | None = None,
    *,
    disabled: Mapping[str, str] = MappingProxyType({}),
    trust: TrustPolicy | None = None,
    manifests: bool = True,
    cache: ManifestCache | None = None,
    known: DescribedCache | None = None,
) -> Described:
    """Describe every candidate in order; ``disabled`` also matches names known only after import.

    ``disabled`` maps canonical plugin names to the setting that turned them off, as
    :func:`ksi_host._discover.disabled_names` returns it. A plugin file or folder that
    ``trust`` does not trust is never imported (see :mod:`ksi_host._trust`).
    ``manifests=False`` imports every candidate even when it ships a manifest (doctor
    checks the code); ``cache`` keeps each manifest read (see :mod:`ksi_host._manifest_cache`);
    ``known`` describes a plugin it kept without importing it (:mod:`ksi_host._described_cache`).
    """
    reporter = reporter or NullReporter()
    trust = trust or TrustPolicy()
    specs: dict[str, PluginSpec] = {}
    excluded: list[Exclusion] = []
    warnings: list[PlanWarning] = []
    for candidate in candidates:
        if manifests and candidate.manifest is not None and candidate.disabled_by is None:
            outcome: PluginSpec | Exclusion | None = _from_manifest(
                candidate, candidate.manifest, cache
            )
        elif candidate.disabled_by is None and known and (kept := known.read(candidate)):
            outcome = kept
        else:
            if candidate.disabled_by is None:
                reporter.importing(candidate)
            outcome = _describe_one(candidate, trust)
        if outcome is None:
            continue
        if isinstance(outcome, PluginSpec):
            spec, key = outcome, outcome.key
            if key in specs:
                outcome = Exclusion.shadowed(spec, by=specs[key])
            elif key in disabled:
                outcome = _disabled_after_import(spec, disabled[key], candidate.name_hint)
            else:
                specs[key] = spec
                warnings.extend(_version_warnings(spec))
                reporter.described(spec)
                continue
        excluded.append(outcome)
        reporter.excluded(outcome)
    return Described(
        specs=tuple(specs.values()), excluded=tuple(excluded), warnings=tuple(warnings)
    )


def _frames(exc: BaseException) -> tuple[tuple[str, int], ...]:
    """Where the exception went, frame by frame, innermost last: as data, for doctor's fixes."""
    return tuple(
        (frame.filename, frame.lineno or 0) for frame in traceback.extract_tb(exc.__traceback__)
    )


def file_module_name(file: Path) -> str:
    """A ``sys.modules`` name unique to this file, so two ``plugin.py`` never collide."""
    digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:16]
    return f"ksi_plugin_file_{digest}"


def code_paths(file: Path) -> list[Path]:
    """Every path whose writer controls a plugin file's code: its folder, itself, its package."""
    if file.name != "__init__.py":
        return [file.parent, file]
    package = file.parent
    inside = sorted(package.rglob("*")) if package.is_dir() else []
    return [package.parent, package, *inside]


def import_described(spec: PluginSpec) -> PluginSpec | Reason:
    """``spec`` with its plugin imported, or why it cannot be: the host's step for manifests.

    The code must still say what the manifest says (the plan was built from the
    manifest); if it does not, the reason lists every field that differs.
    """
    if spec.imported or spec.candidate is None or spec.manifest is None:
        return spec
    outcome = _describe_one(spec.candidate, TrustPolicy())
    if outcome is None:
        return Reason("not-a-plugin", f"{spec.candidate.target} has no `plugin`", "")
    if isinstance(outcome, Exclusion):
        return outcome.reason
    code = PluginManifest.of_code(outcome.plugin, outcome.metadata, outcome.capabilities)
    differences = tuple(difference.render() for difference in spec.manifest.differences(code))
    if differences:
        return Reason(
            "manifest-mismatch",
            f"{spec.name}: {spec.candidate.manifest} disagrees with the code: "
            + "; ".join(differences),
            f"regenerate it: {regenerate_command(spec.candidate, spec.manifest.activation)}",
            differences=differences,
        )
    return outcome


def _from_manifest(
    candidate: Candidate, file: Path, cache: ManifestCache | None
) -> PluginSpec | Exclusion:
    """What the plugin's ``ksi-plugin.toml`` says, without importing the plugin."""
    name, origin = candidate.name_hint, candidate.origin
    try:
        if cache is not None:
            manifest, metadata, capabilities = cache.read(file)
        else:
            text = file.read_text(encoding="utf-8")
            manifest, metadata, capabilities = PluginManifest.read(text, where=str(file))
    except (OSError, UnicodeDecodeError) as exc:
        reason = Reason(
            "invalid-metadata",
            f"{name}: cannot read {file}: {exc}",
            f"reinstall {origin.distribution or name}, whose RECORD lists that file",
        )
        return Exclusion(name, origin, reason)
    except InvalidManifest as exc:
        fix = f"regenerate it from the code: {regenerate_command(candidate, 'startup')}"
        return Exclusion(name, origin, Reason("invalid-metadata", f"{name}: {exc.what}", fix))
    return PluginSpec(
        plugin=NOT_IMPORTED,
        metadata=metadata,
        capabilities=capabilities,
        origin=origin,
        hooks=manifest.hooks,
        manifest=manifest,
        candidate=candidate,
    )


def _describe_one(candidate: Candidate, trust: TrustPolicy) -> PluginSpec | Exclusion | None:
    """The plugin ``candidate`` is, why it is none, or None for a helper module in a folder."""
    name, origin = candidate.name_hint, candidate.origin
    if candidate.disabled_by is not None:
        return _disabled(name, origin, candidate.disabled_by)
    if candidate.file is not None and not candidate.file.is_file():
        reason = Reason(
            "import-error",
            f"{name}: there is no plugin file or folder at {origin.location}",
            "check the path given with --plugin-path or in the config's [host] plugin_paths "
            "(a relative path is relative to the current directory)",
        )
        return Exclusion(name, origin, reason)
    if candidate.file is not None:
        unsafe = first_distrust(code_paths(candidate.file), trust)
        if unsafe is not None:
            reason = Reason(
                "untrusted",
                f"{name} is not loaded: {unsafe.problem}, and its code would run as this user",
                unsafe.hint,
                path=str(unsafe.real),
            )
            return Exclusion(name, origin, reason)
        add_folder(code_paths(candidate.file)[0], trust)
    try:
        with _WATCH.watching(name, origin):
            plugin = _load(candidate)
    except InvalidPluginMetadata as exc:
        reason = Reason(
            "invalid-metadata",
            exc.what,
            exc.hint or "",
            traceback=traceback.format_exc(),
            frames=_frames(exc),
        )
        return Exclusion(name, origin, reason)
    except KsiError as exc:
        reason = Reason(
            "import-error",
            f"{name} from {origin} failed to import: {exc.what}",
            exc.hint or f"fix the error, or set KSI_DISABLE_PLUGINS={name} to skip it",
            traceback=traceback.format_exc(),
            frames=_frames(exc),
        )
        return Exclusion(name, origin, reason)
    except (Exception, SystemExit) as exc:
        reason = Reason(
            "import-error",
            f"{name} from {origin} failed to import: {type(exc).__name__}: {exc}",
            f"fix the error in the traceback, or set KSI_DISABLE_PLUGINS={name} to skip it",
            traceback=traceback.format_exc(),
            module=exc.name if isinstance(exc, ModuleNotFoundError) else None,
            frames=_frames(exc),
        )
        return Exclusion(name, origin, reason)
    if plugin is _MISSING and candidate.scanned and candidate.file and is_helper(candidate.file):
        return None
    where = candidate.target
    try:
        described = _inspect(plugin, where)
    except Exception as exc:
        described = Reason(
            "not-a-plugin",
            f"{where} cannot be inspected: {type(exc).__name__}: {exc}",
            "make the plugin's attributes readable without raising",
            traceback=traceback.format_exc(),
            frames=_frames(exc),
        )
    if isinstance(described, Reason):
        return Exclusion(name, origin, described)
    metadata, capabilities, hooks = described
    return PluginSpec(
        plugin=plugin,
        metadata=metadata,
        capabilities=capabilities,
        origin=origin,
        hooks=hooks,
        candidate=candidate,
    )


class _ImportWatch:
    """Warn, from one background thread, when a plugin import runs long.

    A hung import says nothing itself. Starting a timer per import would cost a thread
    per plugin; instead each import only records itself, and the one watcher thread
    checks whether the import it last saw is still running ``SLOW_IMPORT_SECONDS`` later
    (so a slow import is reported within twice that).
    """

    def __init__(self) -> None:
        self._current: tuple[str, Origin] | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watching(self, name: str, origin: Origin) -> Iterator[None]:
        self._current = (name, origin)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ksi-import-watch", daemon=True)
            self._thread.start()
        self._wake.set()
        try:
            yield
        finally:
            self._current = None

    def _run(self) -> None:
        while self._wake.wait():
            self._wake.clear()
            seen = self._current
            if seen is None:
                continue
            time.sleep(SLOW_IMPORT_SECONDS)
            if self._current is seen:
                logger.warning(
                    "still importing plugin %s from %s after %gs; if it hangs, "
                    "`ksi-host doctor` imports each plugin in a separate process with a timeout",
                    *seen,
                    SLOW_IMPORT_SECONDS,
                )


_WATCH = _ImportWatch()


def _load(candidate: Candidate) -> object:
    """The object a candidate names, or ``_MISSING`` when its module has no ``plugin``."""
    if candidate.plugin is not None:
        return candidate.plugin
    if candidate.entry_point is not None:
        import importlib_metadata  # not for a plan of manifests and built-ins alone

        entry_point = importlib_metadata.EntryPoint(
            name=candidate.name_hint, value=candidate.entry_point, group=ENTRY_POINT_GROUP
        )
        loaded: object = entry_point.load()
    elif candidate.file is not None:
        loaded = _import_file(candidate.file)
        if _plugin_submodule(candidate.file) and not hasattr(loaded, PLUGIN_ATTRIBUTE):
            loaded = importlib.import_module(f"{loaded.__name__}.{PLUGIN_ATTRIBUTE}")
    else:
        loaded = importlib.import_module(str(candidate.module))
    if isinstance(loaded, ModuleType):
        return getattr(loaded, PLUGIN_ATTRIBUTE, _MISSING)
    return loaded


def _plugin_submodule(file: Path) -> bool:
    """A package whose ``plugin.py`` holds the plugin (the template's layout), not ``__init__``."""
    return file.name == "__init__.py" and (file.parent / f"{PLUGIN_ATTRIBUTE}.py").is_file()


def _import_file(file: Path) -> ModuleType:
    """A package under its own name when it is free, else (and a module always) a private one."""
    module = import_own_name(file)
    if module is not None:
        return module
    is_package = file.name == "__init__.py"
    name = file_module_name(file)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[str(file.parent)] if is_package else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _inspect(
    plugin: object, where: str
) -> tuple[PluginMetadata, PluginCapabilities, tuple[str, ...]] | Reason:
    """What the object found at ``where`` says about itself, or why it is not a KSI plugin."""
    example = "plugin = MyPlugin()  # MyPlugin subclasses ksi_host.BasePlugin"
    if plugin is _MISSING:
        return Reason("not-a-plugin", f"{where} has no `plugin`", f"expose the instance: {example}")
    if isinstance(plugin, type):
        return Reason(
            "not-a-plugin",
            f"{where} is the class {plugin.__name__}, not a plugin instance",
            f"create the instance: plugin = {plugin.__name__}()",
        )
    metadata = getattr(plugin, "metadata", _MISSING)
    if metadata is _MISSING:
        return Reason(
            "not-a-plugin",
            f"{where} is a {type(plugin).__name__} with no `metadata`",
            f"subclass ksi_host.BasePlugin and pass PluginMetadata(name=...): {example}",
        )
    if not isinstance(metadata, PluginMetadata):
        return _wrong_type(f"{where}.metadata", metadata, PluginMetadata)
    capabilities = getattr(plugin, "capabilities", None) or PluginCapabilities()
    if not isinstance(capabilities, PluginCapabilities):
        return _wrong_type(f"{where}.capabilities", capabilities, PluginCapabilities)
    hooks = hook_names(plugin)
    if not hooks:
        return Reason(
            "not-a-plugin",
            f"{where} ({type(plugin).__name__}) has no @hookimpl methods",
            "decorate the plugin's hook methods with ksi_host.hookimpl",
        )
    return metadata, capabilities, hooks


def _wrong_type(where: str, value: object, model: type) -> Reason:
    return Reason(
        "invalid-metadata",
        f"{where} is a {type(value).__name__}, not a {model.__name__}",
        f"build it with ksi_host.{model.__name__}(...)",
    )


def _disabled(name: str, origin: Origin, setting: str) -> Exclusion:
    reason = Reason(
        "disabled", f"{name} is disabled by {setting}", f"remove {name!r} from {setting} to load it"
    )
    return Exclusion(name, origin, reason)


def _disabled_after_import(spec: PluginSpec, setting: str, found_as: str) -> Exclusion:
    """Disabled by the name its metadata gives, which only importing it could tell."""
    reason = Reason(
        "disabled",
        f"{spec.name} is disabled by {setting}",
        f"remove {spec.name!r} from {setting} to load it; it was imported to learn that name, "
        f"so to keep it from being imported at all, disable it as {found_as!r}",
    )
    return Exclusion(spec.name, spec.origin, reason, spec)


def _version_warnings(spec: PluginSpec) -> list[PlanWarning]:
    declared, packaged = spec.metadata.version, spec.origin.dist_version
    if declared is None or packaged is None or _same_version(declared, packaged):
        return []
    return [
        PlanWarning(
            "version-mismatch",
            f"{spec.name} says it is version {declared} but its distribution "
            f"{spec.origin.distribution} is {packaged}; using {declared}",
            f"make PluginMetadata(version=...) match the distribution's version {packaged}",
            (spec.name,),
        )
    ]


def _same_version(one: str, other: str) -> bool:
    if one == other:  # the usual case, without two parses per plugin
        return True
    try:
        return Version(one) == Version(other)
    except InvalidVersion:
        return one == other
