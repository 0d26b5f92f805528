"""``install`` and ``uninstall``: check first, change nothing on a refusal, then run pip."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from ksi_host._manage.checks import Problem, check_install, check_removal, check_unresolvable
from ksi_host._manage.environment import HOST_DIST, Environment
from ksi_host._manage.pip import Planned, dry_run, run_pip, split_args
from ksi_host._manage.preview import plugin_problems
from ksi_host._plan import LoadPlan
from ksi_host.errors import ChangeRefused, HostPackage, NotInstalled, PipFailed

__all__ = ["Change", "PlanSource", "install", "install_suggestions", "uninstall"]

PlanSource = Callable[[], LoadPlan]
"""The current load plan, built only when a check needs the plugins' own dependencies."""


@dataclass(frozen=True)
class Change:
    """How the plugin distributions differ between two reads of the environment."""

    added: tuple[tuple[str, str, tuple[str, ...]], ...]
    removed: tuple[tuple[str, str, tuple[str, ...]], ...]
    changed: tuple[tuple[str, str, str, tuple[str, ...]], ...]

    @classmethod
    def between(cls, before: Environment, after: Environment) -> Change:
        old = {d.key: d for d in before.plugin_dists()}
        new = {d.key: d for d in after.plugin_dists()}
        return cls(
            added=tuple((d.name, d.version, d.plugins) for k, d in new.items() if k not in old),
            removed=tuple((d.name, d.version, d.plugins) for k, d in old.items() if k not in new),
            changed=tuple(
                (d.name, old[k].version, d.version, d.plugins)
                for k, d in new.items()
                if k in old and (old[k].version, old[k].record) != (d.version, d.record)
            ),
        )

    def render(self) -> str:
        """One line per plugin distribution added (+), removed (-) or changed (~).

        A distribution reinstalled at the same version with other files is changed too.
        """
        lines = [f"+ {n} {v} (plugins: {', '.join(p)})" for n, v, p in self.added]
        lines += [f"- {n} {v} (plugins: {', '.join(p)})" for n, v, p in self.removed]
        lines += [
            f"~ {n} {f'{a} -> {b}' if a != b else f'{a} reinstalled with other files'} "
            f"(plugins: {', '.join(p)})"
            for n, a, b, p in self.changed
        ]
        return "\n".join(lines) if lines else "no plugin distribution changed"

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def install(args: Sequence[str], *, force: bool = False, plan: PlanSource | None = None) -> Change:
    """``pip install ARGS`` after a dry run shows it breaks neither the host nor a plugin.

    When the dry run's distributions pass, their plugins are described from a staged
    copy (:mod:`ksi_host._manage.preview`): one that needs another ksi-host is refused.
    """
    env = Environment.current()
    try:
        planned = dry_run(args)
    except PipFailed:
        problems = _unresolvable(args, env)
        if problems:
            raise ChangeRefused(
                action=f"install {shlex.join(_specs(args))}",
                problems=problems,
                suggestions=install_suggestions(problems, args),
                forceable=False,
            ) from None
        raise
    touches_plugins = any(
        (dist := env.get(p.name)) is not None and dist.is_plugin and dist.version != p.version
        for p in planned
    )
    problems = check_install(planned, env, plan=plan() if plan and touches_plugins else None)
    if not problems and not force:
        problems = plugin_problems(planned, _options(args), env)
    if problems and not force:
        raise ChangeRefused(
            action=f"install {shlex.join(_specs(args))}",
            problems=problems,
            suggestions=install_suggestions(problems, args),
        )
    run_pip("install", *args)
    return Change.between(env, Environment.current())


def uninstall(
    names: Sequence[str], *, force: bool = False, plan: PlanSource | None = None
) -> Change:
    """``pip uninstall NAMES`` unless a plugin or ksi-host still needs one of them."""
    env = Environment.current()
    missing = [name for name in names if env.get(name) is None]
    if missing:
        raise NotInstalled(names=missing, plugins=[d.name for d in env.plugin_dists()])
    protected = env.protected()
    keys = [canonicalize_name(name) for name in names]
    for name, key in zip(names, keys, strict=True):
        if key in protected:
            raise HostPackage(name=name, needed_by=_needed_by(env, key, protected))
    problems = check_removal(keys, env, plan() if plan else None)
    if problems and not force:
        dependents = sorted({p.dist for p in problems if p.dist and p.dist not in names})
        raise ChangeRefused(
            action=f"uninstall {' '.join(names)}",
            problems=problems,
            suggestions=[f"ksi-host uninstall {' '.join([*names, *dependents])}"]
            if dependents
            else [],
        )
    run_pip("uninstall", "--yes", *names)
    return Change.between(env, Environment.current())


def _needed_by(env: Environment, key: str, protected: frozenset[str]) -> str | None:
    if key == HOST_DIST:
        return None
    for dist, requirement in env.dependents(canonicalize_name(key)):
        if dist.key in protected:
            return f"ksi-host needs it ({dist.name} {dist.version} requires {requirement})"
    return "ksi-host needs it"


def _unresolvable(args: Sequence[str], env: Environment) -> tuple[Problem, ...]:
    """When pip cannot resolve, whether the host is why (each distribution read alone)."""
    try:
        alone: Sequence[Planned] = dry_run(["--no-deps", *args])
    except PipFailed:
        return ()
    return check_unresolvable(alone, env)


def install_suggestions(problems: Sequence[Problem], args: Sequence[str]) -> list[str]:
    """Commands that would work instead, from the problems' data."""
    suggestions: list[str] = []
    for problem in problems:
        if problem.host is not None:
            suggestions.append(problem.host.upgrade_command())
        if problem.kind in ("needs-host", "changes-host") and problem.dist and problem.version:
            older = f"{problem.dist}<{problem.version}"
            suggestions.append(shlex.join(["ksi-host", "install", older, *_options(args)]))
        if problem.kind == "breaks-dependent" and problem.dist:
            together = ["ksi-host", "install", *args, "--upgrade", problem.dist]
            suggestions.append(shlex.join(together))
    return list(dict.fromkeys(suggestions))


def _options(args: Sequence[str]) -> list[str]:
    """The pip options of a command line, without its requirement specifiers."""
    return split_args(args)[0]


def _specs(args: Sequence[str]) -> list[str]:
    """The requirement specifiers of a command line, without pip's options."""
    return split_args(args)[1]
