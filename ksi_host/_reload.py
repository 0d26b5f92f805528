"""What changes when a running host adopts a new plan: which plugins stop, start, restart.

``ksi-host reload`` (or SIGHUP, or the ``plugin:reload`` event) builds a fresh plan
with the same config and paths and hands it to :meth:`ksi_host._lifecycle.Host.apply`.
A plugin is the same in both plans when the resolver hands over the same object;
re-planning imports nothing again unless :func:`forget_changed_modules` dropped the
modules of a distribution that was upgraded, reinstalled with other files or removed,
or of a plugin file edited since the host loaded it (see :func:`code_stamps`); an
isolated plugin keeps its proxy (and its worker) unless its code changed or it
restarts (:func:`keep_workers`). Then:

- a plugin only in the old plan stops (``stopped``);
- a plugin only in the new plan starts (``started``);
- a plugin in both, as another object, stops and starts again (``restarted``), and so
  does every running plugin that depends on one that stops or restarts, so no plugin
  ever runs without what it needs;
- everything else keeps running untouched, its clients with it.

Stops run in reverse load order of the old plan, starts in load order of the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ksi_host._describe import file_module_name
from ksi_host._discover import ENTRY_POINT_GROUP, autoload_enabled
from ksi_host._plan import LoadPlan, PluginSpec
from ksi_host._workers import is_worker

if TYPE_CHECKING:
    import importlib_metadata

__all__ = [
    "Forgotten",
    "InstalledSince",
    "PlanChange",
    "PlanDiff",
    "code_stamp",
    "code_stamps",
    "diff_plans",
    "forget_changed_modules",
    "keep_workers",
]


@dataclass(frozen=True)
class PlanDiff:
    """Keys to stop (old plan, reverse load order) and to start (new plan, load order)."""

    stop: tuple[str, ...]
    start: tuple[str, ...]
    removed: frozenset[str]
    added: frozenset[str]


def diff_plans(
    old: LoadPlan, new: LoadPlan, active: Iterable[str], changed: Collection[str] = ()
) -> PlanDiff:
    """What adopting ``new`` takes, given the ``active`` (running or pending) keys of ``old``.

    ``changed`` are plugins whose code changed on disk (see :func:`forget_changed_modules`).
    """
    before = {spec.key: spec for spec in old.order}
    after = {spec.key: spec for spec in new.order}
    removed = before.keys() - after.keys()
    replaced = {
        key
        for key in before.keys() & after.keys()
        if key in changed or not _same(before[key], after[key])
    }
    going = set(removed | replaced)
    for key in sorted(going):
        going.update(old.dependents(key))
    going &= set(active) | replaced
    stop = tuple(spec.key for spec in reversed(old.order) if spec.key in going)
    added = after.keys() - before.keys()
    start = tuple(spec.key for spec in new.order if spec.key in added or spec.key in going)
    return PlanDiff(stop=stop, start=start, removed=frozenset(removed), added=frozenset(added))


def _same(before: PluginSpec, after: PluginSpec) -> bool:
    """The same object; for a plugin not imported (lazy), from the same distribution and manifest.

    Every lazy plugin's plan holds the same placeholder, whatever its version; an
    isolated plugin is described afresh (a new proxy) by every plan.
    """
    if _both_workers(before, after):
        return True
    if before.plugin is not after.plugin:
        return False
    return before.imported or (before.origin == after.origin and before.manifest == after.manifest)


@dataclass(frozen=True)
class PlanChange:
    """What a reload did, by plugin name; ``failed`` maps a plugin to why it did not start."""

    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    failed: Mapping[str, str] | None = None

    @classmethod
    def of(cls, diff: PlanDiff, names: Mapping[str, str], failed: Mapping[str, str]) -> PlanChange:
        """Name what ``diff`` did once applied; ``failed`` plugins did not start."""
        ok = [key for key in diff.start if names[key] not in failed]
        return cls(
            started=tuple(names[key] for key in ok if key in diff.added),
            stopped=tuple(names[key] for key in diff.stop if key not in diff.start),
            restarted=tuple(names[key] for key in ok if key not in diff.added),
            failed=dict(failed),
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``plugin:reload`` reply."""
        return {
            "status": "reloaded",
            "started": list(self.started),
            "stopped": list(self.stopped),
            "restarted": list(self.restarted),
            "failed": dict(self.failed or {}),
        }

    def summary(self) -> str:
        """One line for the log and the command line."""
        parts = [
            f"{word} {', '.join(names)}"
            for word, names in (
                ("started", self.started),
                ("stopped", self.stopped),
                ("restarted", self.restarted),
                ("failed", tuple(self.failed or ())),
            )
            if names
        ]
        return "; ".join(parts) if parts else "no plugin changed"


def code_stamps(plan: LoadPlan) -> dict[str, str]:
    """An identity of each imported plugin's code, to tell later whether it changed on disk.

    A distribution's is its location and the hash of its ``RECORD`` (which names its
    version and lists a hash of every file it installed), so a reinstall of the same
    version with other code is a change; a plugin file's (or package's) is the hash of
    its contents, so an edit that keeps the size and the modification time is one too.
    An editable install's stamp adds its plugin module's contents (RECORD does not
    change when its author edits the code).
    A distribution is the one the plan's scan found (``Candidate.dist_info``), read
    as it is now: the one the plugin was imported from.
    A plugin not
    imported yet (lazy) has nothing to forget: it is stamped when it activates
    (:func:`code_stamp`).
    """
    return {spec.key: stamp for spec in plan.order if (stamp := code_stamp(spec)) is not None}


def code_stamp(spec: PluginSpec) -> str | None:
    """The identity of ``spec``'s code if it is imported (here, or in its worker), else None."""
    if is_worker(spec.plugin):
        return _stamp(spec, planned=True)
    top = _top_module(spec)
    return _stamp(spec, planned=True) if top is not None and top in sys.modules else None


def keep_workers(old: LoadPlan, new: LoadPlan, start: Collection[str]) -> LoadPlan:
    """``new`` with the old spec of each isolated plugin the diff does not (re)start.

    The planner describes an isolated plugin afresh each time, behind a new proxy;
    :func:`diff_plans` counts it as the same plugin when its origin and code did not
    change, and then the old proxy (and its worker) must stay the plan's. One that
    restarts (``start``, e.g. because a dependency did) gets the new proxy: a stopped
    proxy is never started again.
    """
    before = {spec.key: spec for spec in old.order}

    def kept(spec: PluginSpec) -> PluginSpec:
        was = before.get(spec.key)
        if was is not None and spec.key not in start and _both_workers(was, spec):
            return was
        return spec

    return replace(new, order=tuple(kept(spec) for spec in new.order))


def _both_workers(before: PluginSpec, after: PluginSpec) -> bool:
    """Two proxies of one isolated plugin from the same origin: the same plugin."""
    return is_worker(before.plugin) and is_worker(after.plugin) and before.origin == after.origin


@dataclass(frozen=True)
class Forgotten:
    """What :func:`forget_changed_modules` found: who changed, and every stamp as it was then."""

    changed: frozenset[str]
    now: Mapping[str, str]

    def stamps_after(self, plan: LoadPlan) -> dict[str, str]:
        """The stamps to keep for ``plan`` (made after this): those from before it was made.

        So a plugin edited while the plan was made (after its import, or while it kept
        running) still differs at the next reload; only a plugin new to ``plan`` is
        stamped after its import.
        """
        return {key: self.now.get(key, stamp) for key, stamp in code_stamps(plan).items()}


def forget_changed_modules(plan: LoadPlan, stamps: Mapping[str, str]) -> Forgotten:
    """Drop from ``sys.modules`` the modules of plugins that changed on disk.

    A plugin changed when its stamp is not the one in ``stamps`` (see
    :func:`code_stamps`). Their cached bytecode goes too when it can: Python trusts a
    ``.pyc`` whose source has the same size and modification second.
    """
    importlib.invalidate_caches()
    now = {s.key: _stamp(s) or "gone" for s in plan.order if s.key in stamps}
    changed = [s for s in plan.order if s.key in now and now[s.key] != stamps[s.key]]
    for spec in changed:
        top = _top_module(spec)
        if top is None:
            continue
        for loaded in [m for m in sys.modules if m == top or m.startswith(f"{top}.")]:
            _drop_bytecode(sys.modules.pop(loaded))
    return Forgotten(frozenset(spec.key for spec in changed), now)


def _stamp(spec: PluginSpec, *, planned: bool = False) -> str | None:
    """See :func:`code_stamps`; a distribution or file that went away is ``"gone"``.

    ``planned``: the distribution the plan found, if its folder is still there (looking
    it up by name walks ``sys.path``); otherwise, as when checking for changes, the one
    installed under its name now.
    """
    origin = spec.origin
    if origin.kind == "entry-point" and origin.distribution:
        import importlib_metadata  # not at start-up: only an installed plugin's stamp needs it

        from ksi_host._manage.environment import record_digest

        folder = spec.candidate.dist_info if planned and spec.candidate is not None else None
        try:
            dist = (
                importlib_metadata.Distribution.at(folder)
                if folder is not None and os.path.isdir(folder)  # noqa: PTH112 (a Path costs more)
                else importlib_metadata.distribution(origin.distribution)
            )
        except importlib_metadata.PackageNotFoundError:
            return "gone"
        stamp = f"{dist.locate_file('')}:{record_digest(dist)}"  # no version parse: costlier
        source = _editable_source(dist, spec)
        return stamp if source is None else f"{stamp}:{_contents(source)}"
    file = _file_of(spec)
    return None if file is None else _contents(file)


def _editable_source(dist: importlib_metadata.IDistribution, spec: PluginSpec) -> Path | None:
    """The plugin module's file when its distribution is an editable install.

    Its RECORD lists only a ``.pth`` or a finder, never the code the author edits.
    """
    from ksi_host._manage.environment import is_editable  # as _stamp's imports

    if not is_editable(dist):
        return None
    top = _top_module(spec)
    try:
        found = importlib.util.find_spec(top) if top else None
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found is not None and found.origin else None


def _contents(file: Path) -> str:
    """The hash of a module file, or of every module of the package whose ``__init__`` it is."""
    files = sorted(file.parent.rglob("*.py")) if file.name == "__init__.py" else [file]
    digest = hashlib.sha256()
    try:
        for path in files:
            digest.update(f"{path}\0".encode())
            digest.update(path.read_bytes())
    except OSError:
        return "gone"
    return digest.hexdigest()


def _drop_bytecode(module: ModuleType) -> None:
    cached = getattr(module, "__cached__", None)
    if isinstance(cached, str):
        with contextlib.suppress(OSError):
            Path(cached).unlink(missing_ok=True)


def _file_of(spec: PluginSpec) -> Path | None:
    """The file a plugin from a path or folder was imported from (a package's ``__init__``)."""
    if spec.origin.kind not in ("path", "folder", "user"):
        return None
    path = Path(spec.origin.location)
    if path.suffix == ".py":
        return path
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None  # a dotted module name given as a path: reloaded when its version changes


def _top_module(spec: PluginSpec) -> str | None:
    """The module to import again: an entry point's top package, a plugin file's own module.

    Never the module of the plugin's class, which may be a library (or ksi_host) itself.
    """
    if spec.origin.kind == "entry-point":
        return spec.origin.location.split(":")[0].split(".")[0]
    file = _file_of(spec)
    return _file_module(file) if file is not None else None


def _file_module(file: Path) -> str:
    """The name a plugin file was imported under: its own when it was free, else a private one.

    See :func:`ksi_host._folder_imports.import_own_name`.
    """
    own = file.parent.name if file.name == "__init__.py" else file.stem
    loaded = getattr(sys.modules.get(own), "__file__", None)
    if loaded is not None and Path(loaded).resolve() == file.resolve():
        return own
    return file_module_name(file)


class InstalledSince:
    """Plugin entry points installed (or upgraded) since a plan was made: not running yet.

    An event nobody answers is explained by them ("run ``ksi-host reload``"). The
    scan of installed metadata runs again only when a ``sys.path`` folder changed.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._stamp: tuple[int, ...] | None = None
        self._found: tuple[tuple[str, str, str | None], ...] = ()

    def names(self, plan: LoadPlan) -> tuple[str, ...]:
        """``plugin 'x' (dist version)`` for each entry point the plan does not know."""
        if not autoload_enabled(self._env):
            return ()
        known = {
            (origin.distribution, origin.entry_point, origin.dist_version)
            for origin in (
                *(spec.origin for spec in plan.order),
                *(exclusion.origin for exclusion in plan.excluded),
            )
            if origin.kind == "entry-point"
        }
        return tuple(
            f"plugin {name!r} ({dist} {version})"
            for dist, name, version in self._entry_points()
            if (dist, name, version) not in known
        )

    def _entry_points(self) -> tuple[tuple[str, str, str | None], ...]:
        stamp = tuple(_mtime(folder) for folder in sys.path)
        if stamp != self._stamp:
            import importlib_metadata  # as _stamp's

            importlib.invalidate_caches()
            self._stamp = stamp
            self._found = tuple(
                (ep.dist.name, ep.name, ep.dist.version) if ep.dist else ("?", ep.name, None)
                for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)
            )
        return self._found


def _mtime(folder: str) -> int:
    try:
        return Path(folder or ".").stat().st_mtime_ns
    except OSError:
        return 0
