"""Find plugin candidates in every source, in precedence order, without importing any.

Sources, the first one winning when two offer the same plugin name::

    path         files, folders or dotted module names given by the caller or config
    folder       each folder of KSI_PLUGIN_PATH (os.pathsep-separated, in order)
    user         ~/.ksi/plugins ($KSI_HOME/plugins)
    entry-point  entry points of group "ksi.plugins" (off with KSI_DISABLE_PLUGIN_AUTOLOAD=1)
    builtin      the modules ksi_plugins_builtin declares (PLUGIN_MODULES)

A folder offers its ``*.py`` files and its packages (names starting with ``_`` or
``.`` are skipped); one that turns out to be a helper plugins import is skipped when
described (see :mod:`ksi_host._folder_imports`). Nothing here imports plugin code:
that is ``_describe``'s job.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ksi_host._manifest import MANIFEST_FILE
from ksi_host._paths import KsiPaths
from ksi_host._plan import Candidate, Origin, SourceKind
from ksi_host._report import NullReporter, Reporter
from ksi_host._scan_cache import ScanCache
from ksi_host._switches import switched_on
from ksi_host.errors import ConfigError
from ksi_host.plugin_types import canonical_name
from ksi_plugins_builtin import PLUGIN_MODULES

if TYPE_CHECKING:
    import importlib_metadata

__all__ = [
    "BUILTIN_PACKAGE",
    "ENTRY_POINT_GROUP",
    "HOST_DISTRIBUTION",
    "PLUGIN_ATTRIBUTE",
    "PYDANTIC_ENTRY_POINT_GROUP",
    "autoload_enabled",
    "builtin_candidates",
    "disabled_names",
    "discover",
    "distribution_candidates",
    "env_disabled",
    "env_plugin_folders",
    "explicit_candidates",
    "plugin_modules",
]

ENTRY_POINT_GROUP: Final = "ksi.plugins"
PYDANTIC_ENTRY_POINT_GROUP: Final = "pydantic"
"""The group pydantic loads its plugins from, recorded by the same scan."""
BUILTIN_PACKAGE: Final = "ksi_plugins_builtin"
PLUGIN_ATTRIBUTE: Final = "plugin"
HOST_DISTRIBUTION: Final = "ksi-host"
"""The canonical name a requirement on the host itself uses (``ksi-host>=2``)."""


def disabled_names(
    disabled: Collection[str] = (), env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map each canonical name the user turned off to the setting that turned it off."""
    env = os.environ if env is None else env
    names: dict[str, str] = {}
    settings = [(name, "[host] disabled (config file or KSI_HOST__DISABLED)") for name in disabled]
    settings += [(name, "KSI_DISABLE_PLUGINS") for name in env_disabled(env)]
    for name, setting in settings:
        try:
            names.setdefault(canonical_name(name), setting)
        except ValueError as exc:
            raise ConfigError(
                what=f"{setting} names {name!r}, which is not a plugin name: {exc}",
                where=setting,
                hint="list plugin names as `ksi-host plugins` shows them, e.g. 'my_plugin'",
            ) from None
    return names


def env_disabled(env: Mapping[str, str]) -> list[str]:
    """The names ``KSI_DISABLE_PLUGINS`` lists (comma-separated), as the user wrote them."""
    raw = env.get("KSI_DISABLE_PLUGINS", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def autoload_enabled(env: Mapping[str, str]) -> bool:
    """Whether entry points are searched: unless ``KSI_DISABLE_PLUGIN_AUTOLOAD`` is set true."""
    return not switched_on(env, "KSI_DISABLE_PLUGIN_AUTOLOAD")


def env_plugin_folders(env: Mapping[str, str]) -> list[Path]:
    """The folders ``KSI_PLUGIN_PATH`` lists (``os.pathsep``-separated), in order."""
    raw = env.get("KSI_PLUGIN_PATH", "")
    return [Path(folder).expanduser() for folder in raw.split(os.pathsep) if folder.strip()]


def discover(
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    disabled: Collection[str] = (),
    reporter: Reporter | None = None,
    builtin_package: str | None = BUILTIN_PACKAGE,
) -> tuple[Candidate, ...]:
    """Every candidate of every source, highest precedence first, disabled ones marked.

    ``builtin_package`` names the package whose modules are the built-in plugins
    (``None`` leaves them out).
    """
    env = os.environ if env is None else env
    reporter = reporter or NullReporter()
    off = disabled_names(disabled, env)
    found: list[Candidate] = []
    seen: set[str] = set()
    for candidate in _all_sources(paths, env, builtin_package):
        identity = _identity(candidate)
        if identity in seen:
            continue
        seen.add(identity)
        setting = off.get(canonicalize_name(candidate.name_hint))
        if setting is not None:
            candidate = replace(candidate, disabled_by=setting)
        reporter.found(candidate)
        found.append(candidate)
    return tuple(found)


def _all_sources(
    paths: Sequence[str | Path], env: Mapping[str, str], builtin_package: str | None
) -> Iterator[Candidate]:
    for item in paths:
        yield from _explicit(item)
    for folder in env_plugin_folders(env):
        yield from _folder(folder, "folder")
    yield from _folder(KsiPaths.from_env(env).plugins_dir, "user")
    if autoload_enabled(env):
        yield from _entry_points(env)
    if builtin_package is not None:
        yield from builtin_candidates(builtin_package)


def _identity(candidate: Candidate) -> str:
    """The same file, module or entry point reached twice is one candidate."""
    if candidate.file is not None:
        return f"file:{candidate.file.resolve()}"
    if candidate.module is not None:
        return f"module:{candidate.module}"
    return f"entry-point:{candidate.origin.distribution}:{candidate.entry_point}"


def explicit_candidates(item: str | Path) -> tuple[Candidate, ...]:
    """What one ``--plugin-path`` item offers: a module, a file, a package or a folder's plugins."""
    return tuple(_explicit(item))


def _explicit(item: str | Path) -> Iterator[Candidate]:
    text = str(item)
    path = Path(text).expanduser()
    looks_like_path = (
        isinstance(item, Path) or path.suffix == ".py" or "/" in text or os.sep in text
    )
    if not looks_like_path and not path.exists():
        yield Candidate(name_hint=text.rpartition(".")[2], origin=Origin("path", text), module=text)
    elif path.is_dir() and not (path / "__init__.py").is_file():
        yield from _folder(path, "path")
    else:
        yield _file_candidate(path, "path")


def _folder(folder: Path, kind: SourceKind) -> Iterator[Candidate]:
    """A missing folder offers nothing, as a missing PYTHONPATH entry does."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        is_module = entry.suffix == ".py" and entry.is_file()
        if is_module or (entry / "__init__.py").is_file():
            yield replace(_file_candidate(entry, kind), scanned=True)


def _file_candidate(path: Path, kind: SourceKind) -> Candidate:
    is_package = path.is_dir()
    name = path.name if is_package else path.stem
    file = path / "__init__.py" if is_package else path
    return Candidate(name_hint=name, origin=Origin(kind, str(path)), file=file)


def _entry_points(env: Mapping[str, str]) -> Iterator[Candidate]:
    """One scan of ``ksi.plugins``, or the last one while ``sys.path`` is unchanged.

    importlib_metadata drops a distribution seen twice; :mod:`ksi_host._scan_cache`
    says when a scan can be kept.
    """
    cache = ScanCache.of(env)
    kept = cache.candidates()
    if kept is not None:
        return iter(kept)
    import importlib_metadata  # a scan only: a kept one needs none of its import

    every = importlib_metadata.entry_points()
    found = list(_entry_point_candidates(list(every.select(group=ENTRY_POINT_GROUP))))
    cache.keep(found, pydantic_plugins=bool(every.select(group=PYDANTIC_ENTRY_POINT_GROUP)))
    return iter(found)


def distribution_candidates(folder: Path) -> tuple[Candidate, ...]:
    """The ``ksi.plugins`` entry points of the distributions in ``folder`` alone.

    For a folder that is not on ``sys.path`` (``ksi-host install`` stages what it is
    about to install there); candidates are as :func:`discover` makes them.
    """
    import importlib_metadata  # imported only to scan (see _entry_points)

    found = [
        ep
        for dist in importlib_metadata.distributions(path=[str(folder)])
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)
    ]
    return tuple(_entry_point_candidates(found))


def _entry_point_candidates(found: list[importlib_metadata.EntryPoint]) -> Iterator[Candidate]:
    per_package = Counter((id(ep.dist), _top_package(ep.value)) for ep in found)
    for ep in found:
        distribution, version, host = _name_and_version(ep.dist)
        top = _top_package(ep.value)
        alone = per_package[id(ep.dist), top] == 1
        yield Candidate(
            name_hint=ep.name,
            origin=Origin(
                "entry-point",
                ep.value,
                distribution=distribution,
                dist_version=version,
                entry_point=ep.name,
                host_requirement=host,
            ),
            entry_point=ep.value,
            manifest=_manifest(ep.dist, top) if alone else None,
            dist_info=_dist_info(ep.dist),
        )


def _top_package(value: str) -> str:
    return value.partition(":")[0].strip().partition(".")[0]


def _dist_info(dist: importlib_metadata.IDistribution | None) -> str | None:
    """The metadata folder of a distribution installed as one (a path distribution's str).

    importlib-metadata renders a path distribution as its folder from 10.0 on; with an
    older one this is None, and the host looks the distribution up by name as before
    (same stamp, found more slowly).
    """
    folder = str(dist) if dist is not None else ""
    return folder if folder and Path(folder).is_dir() else None


def _manifest(dist: importlib_metadata.IDistribution | None, package: str) -> Path | None:
    """The package's ``ksi-plugin.toml`` if the distribution's RECORD lists it.

    Only a file the installer recorded counts: one left behind by an old install, or
    dropped in by hand, is not the installed distribution's and is ignored. A package
    that two entry points of one distribution point into has no manifest (it would
    describe only one of them).
    """
    if dist is None:
        return None
    wanted = f"{package}/{MANIFEST_FILE}"
    location = str(dist.locate_file(wanted))
    # Most plugins ship none: one stat and no RECORD read (nor a Path: 1000 of them add up).
    if not os.path.isfile(location):  # noqa: PTH113
        return None
    # A RECORD row is "path,hash,size"; this path needs no CSV quoting.
    listed = f"\n{wanted}," in "\n" + (dist.read_text("RECORD") or "")
    return Path(location) if listed else None


def _name_and_version(
    dist: importlib_metadata.IDistribution | None,
) -> tuple[str | None, str | None, str | None]:
    """``Name``, ``Version`` and the requirement on ksi-host, from the head of METADATA.

    ``dist.name``, ``dist.version`` and ``dist.requires`` each parse the whole file
    (long description included) with :mod:`email`; with a thousand plugins that was a
    tenth of ``ksi-host plugins``. All three are single-line headers before the first
    blank line.
    """
    if dist is None:
        return None, None, None
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, str] = {}
    host = None
    for line in text.splitlines():
        if not line.strip():
            break
        key, colon, value = line.partition(":")
        if colon and key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
        elif colon and key == "Requires-Dist" and host is None:
            host = _host_requirement(value.strip())
    return fields.get("Name"), fields.get("Version"), host


def _host_requirement(text: str) -> str | None:
    """``text`` if it is a requirement on ksi-host itself (the resolver checks it)."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    return text if canonicalize_name(requirement.name) == HOST_DISTRIBUTION else None


def builtin_candidates(package: str = BUILTIN_PACKAGE) -> Iterator[Candidate]:
    """The built-in plugins' modules, as the lowest-precedence source lists them.

    ksi-host's own are declared (``ksi_plugins_builtin.PLUGIN_MODULES``, kept equal to
    :func:`plugin_modules` by the tests) so that no plan parses them; any other package is walked.
    """
    modules = PLUGIN_MODULES if package == BUILTIN_PACKAGE else plugin_modules(package)
    for module in modules:
        yield Candidate(
            name_hint=module.rpartition(".")[2],
            origin=Origin("builtin", module),
            module=module,
        )


def plugin_modules(package: str) -> Iterator[str]:
    """Every module and subpackage of ``package`` that binds ``plugin``, read without importing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return
    for location in spec.submodule_search_locations:
        yield from _walk_package(package, Path(location))


def _walk_package(package: str, folder: Path) -> Iterator[str]:
    """Modules and subpackages that bind ``plugin``; helpers and ``_private`` ones are skipped."""
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        module = f"{package}.{entry.stem if entry.is_file() else entry.name}"
        if entry.suffix == ".py" and entry.is_file():
            source = entry
        elif (entry / "__init__.py").is_file():
            source = entry / "__init__.py"
            yield from _walk_package(module, entry)
        else:
            continue
        if _binds_plugin(source):
            yield module


def _binds_plugin(source: Path) -> bool:
    """Whether a module binds ``plugin`` at top level; unreadable ones say yes, to be reported."""
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (OSError, SyntaxError, ValueError):
        return True
    return any(PLUGIN_ATTRIBUTE in _bound_names(node) for node in tree.body)


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [alias.asname or alias.name for alias in node.names]
    return []
