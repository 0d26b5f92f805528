"""``sync``: install exactly the plugin set of a lock file (``ksi-host lock`` writes one).

``sync`` installs the locked version of each plugin distribution that is missing or at
another version (pip resolves what they need), removes the plugin distributions the
lock does not name, and changes no installed package that is not a plugin
distribution. It checks first, like ``install``, and checks after that the
environment's plugin set is the lock's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from ksi_host._manage.checks import check_install, check_only_plugins
from ksi_host._manage.commands import Change, PlanSource, install_suggestions
from ksi_host._manage.environment import Environment
from ksi_host._manage.lockfile import LockFile, read_lock
from ksi_host._manage.pip import dry_run, run_pip
from ksi_host._manage.preview import plugin_problems
from ksi_host.errors import ChangeRefused, LockFileError

__all__ = ["Synced", "sync"]


@dataclass(frozen=True)
class Synced:
    """What ``sync`` changed, and what the reader should know (another ksi-host wrote it)."""

    change: Change
    notes: tuple[str, ...]


def sync(
    file: Path,
    pip_args: Sequence[str] = (),
    *,
    force: bool = False,
    plan: PlanSource | None = None,
) -> Synced:
    """Make this environment's plugin distributions exactly those of the lock ``file``."""
    locked = read_lock(file)
    env = Environment.current()
    wanted = locked.versions()
    have = {dist.key: dist.version for dist in env.plugin_dists()}
    install = [
        f"{entry.distribution}=={entry.version}"
        for entry in locked.plugin
        if _installed_version(env, entry.distribution) != entry.version
    ]
    remove = sorted(key for key in have if key not in wanted)
    if install:
        planned = dry_run([*install, *pip_args])
        problems = (
            *check_install(planned, env, plan=plan() if plan else None, removing=remove),
            *check_only_plugins(planned, env),
        )
        if not problems and not force:
            problems = plugin_problems(planned, pip_args, env)
    else:
        problems = check_install((), env, plan=plan() if plan and remove else None, removing=remove)
    if problems and not force:
        raise ChangeRefused(
            action=f"sync {file}",
            problems=problems,
            suggestions=install_suggestions(problems, [*install, *pip_args]),
        )
    if install:
        run_pip("install", *install, *pip_args)
    if remove:
        run_pip("uninstall", "--yes", *remove)
    after = Environment.current()
    _check_reproduced(file, locked, after)
    notes = []
    if locked.ksi_host != after.host_version:
        notes.append(
            f"note: {file} was written by ksi-host {locked.ksi_host}; this is "
            f"ksi-host {after.host_version}"
        )
    return Synced(Change.between(env, after), tuple(notes))


def _installed_version(env: Environment, name: str) -> str | None:
    dist = env.get(name)
    return dist.version if dist else None


def _check_reproduced(file: Path, locked: LockFile, env: Environment) -> None:
    """The environment's plugin set is now the lock's, or say what differs."""
    now = {dist.key: dist for dist in env.plugin_dists()}
    differences = []
    for entry in locked.plugin:
        dist = now.pop(canonicalize_name(entry.distribution), None)
        if dist is None:
            differences.append(f"{entry.distribution} {entry.version} is not installed")
        elif dist.version != entry.version:
            differences.append(f"{entry.distribution} is {dist.version}, not {entry.version}")
        elif entry.plugins and tuple(sorted(entry.plugins)) != dist.plugins:
            differences.append(
                f"{entry.distribution} {entry.version} provides {', '.join(dist.plugins)}, "
                f"not {', '.join(entry.plugins)} (another build of the same version?)"
            )
    differences += [f"{dist.name} {dist.version} is installed too" for dist in now.values()]
    if differences:
        raise LockFileError(
            file=file,
            what="sync did not reproduce the lock: " + "; ".join(differences),
            hint="see pip's output above; `ksi-host lock -o -` shows the set installed now",
        )
