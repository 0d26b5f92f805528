"""Decide, before pip changes anything, whether an install or an uninstall would break the host.

Three rules, each a :class:`Problem` that names the package at fault, the requirement
as written, and the versions before and after:

- ``needs-host``: a distribution to install requires a ksi-host version this one is not;
- ``changes-host``: the install would change ksi-host or one of its own dependencies
  (directly or not);
- ``breaks-dependent``: an installed distribution, or a running plugin's declared
  dependency, would no longer be satisfied (a changed or removed package it needs);
- ``not-a-plugin`` (``sync`` only): an installed package that is not a plugin
  distribution would change.

Installed versions satisfy a specifier even when they are pre-releases, as pip treats them;
the rule (and the wording of ``needs-host``) is the plan's own, from :mod:`ksi_host._host_version`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from ksi_host._host_version import HostMismatch, check_host, satisfies
from ksi_host._manage.environment import HOST_DIST, Environment
from ksi_host._manage.pip import Planned
from ksi_host._plan import LoadPlan

__all__ = [
    "Problem",
    "ProblemKind",
    "check_install",
    "check_only_plugins",
    "check_removal",
    "check_unresolvable",
    "host_problem",
]

ProblemKind = Literal["needs-host", "changes-host", "breaks-dependent", "not-a-plugin"]


@dataclass(frozen=True)
class Problem:
    """One requirement a change would leave unmet.

    ``package`` is who declares ``requirement`` (``dist``: its distribution, when it
    is one), ``target`` the distribution (or plugin) it names, ``installed`` its
    version now and ``proposed`` its version after the change (``None``: removed).
    """

    kind: ProblemKind
    package: str
    dist: str | None
    version: str | None
    requirement: str
    target: str
    installed: str | None
    proposed: str | None
    host: HostMismatch | None = None
    """For ``needs-host``: the requirement the host does not meet, as the plan words it."""

    def message(self) -> str:
        who = f"{self.package} {self.version}" if self.version else self.package
        now = self.installed or "not installed"
        if self.host is not None:
            return self.host.message()
        after = "removed" if self.proposed is None else self.proposed
        if after[:1] in "<>=!~":
            after = f"a version matching {after}"
        change = f"{self.target} {now} -> {after}"
        if self.kind == "not-a-plugin":
            return (
                f"{change}: {self.target} is not a plugin distribution, and sync changes only those"
            )
        if self.kind == "changes-host":
            return f"{change} (ksi-host needs it as it is), because {who} requires " + (
                self.requirement
            )
        return f"{change} would break {who}, which requires {self.requirement}"


def check_install(
    planned: Sequence[Planned],
    env: Environment,
    *,
    plan: LoadPlan | None = None,
    removing: Collection[NormalizedName] = (),
) -> tuple[Problem, ...]:
    """Every problem installing ``planned`` (and removing ``removing``) would cause."""
    after: dict[NormalizedName, str | None] = {key: d.version for key, d in env.dists.items()}
    after.update(dict.fromkeys(removing))
    after.update({p.key: p.version for p in planned})
    changed = {
        key for key, version in after.items() if env.get(key) is None or version != _now(env, key)
    }
    problems = [*_needs_host(planned, env), *_changes_host(planned, env)]
    replaced = {p.key for p in planned} | set(removing)
    # A change to the host's own packages is refused as such; what else it breaks is noise.
    changed -= env.protected()
    problems += _broken_dists(env, after, changed, skip=replaced)
    if plan is not None:
        problems += _broken_plugins(plan, env, after, changed, skip=replaced)
    return tuple(problems)


def check_removal(
    removing: Collection[NormalizedName], env: Environment, plan: LoadPlan | None
) -> tuple[Problem, ...]:
    """What removing ``removing`` would break among the distributions and plugins that stay."""
    return check_install((), env, plan=plan, removing=removing)


def _now(env: Environment, key: str) -> str | None:
    dist = env.get(key)
    return dist.version if dist else None


def _needs_host(planned: Iterable[Planned], env: Environment) -> list[Problem]:
    """Distributions whose ``Requires-Dist`` names a ksi-host this one is not."""
    problems = []
    for p in planned:
        for requirement in p.requires:
            if canonicalize_name(requirement.name) != HOST_DIST:
                continue
            mismatch = check_host(
                requirement,
                host_version=env.host_version,
                subject=f"{p.name} {p.version}",
                declared_in="its Requires-Dist",
            )
            if mismatch is not None:
                problems.append(host_problem(mismatch, p.name, p.version))
    return problems


def host_problem(mismatch: HostMismatch, dist: str, version: str) -> Problem:
    """A ``needs-host`` problem of distribution ``dist`` (or of one of its plugins)."""
    return Problem(
        "needs-host",
        dist,
        dist,
        version,
        mismatch.requirement,
        "ksi-host",
        mismatch.host_version,
        None,
        host=mismatch,
    )


def _changes_host(planned: Sequence[Planned], env: Environment) -> list[Problem]:
    """A protected distribution pip would change, blamed on the requirement that moves it."""
    protected = env.protected()
    problems = []
    for target in planned:
        dist = env.get(target.name)
        if target.key not in protected or dist is None or dist.version == target.version:
            continue
        if target.key == HOST_DIST and any(
            canonicalize_name(r.name) == HOST_DIST for p in planned for r in p.requires
        ):
            continue  # said better by needs-host
        blamed = [
            (p, r)
            for p in planned
            for r in p.requires
            if canonicalize_name(r.name) == target.key and not satisfies(r, dist.version)
        ]
        if not blamed and target.requested:
            blamed = [(target, Requirement(f"{target.name}=={target.version}"))]
        for p, requirement in blamed or [(target, Requirement(target.name))]:
            problems.append(
                Problem(
                    "changes-host",
                    p.name if p is not target else "the command line",
                    p.name if p is not target else None,
                    p.version if p is not target else None,
                    str(requirement),
                    dist.name,
                    dist.version,
                    target.version,
                )
            )
    return problems


def _broken_dists(
    env: Environment,
    after: Mapping[NormalizedName, str | None],
    changed: Collection[NormalizedName],
    *,
    skip: Collection[NormalizedName],
) -> list[Problem]:
    return [
        Problem(
            "breaks-dependent",
            dist.name,
            dist.name,
            dist.version,
            str(requirement),
            env.dists[key].name if key in env.dists else requirement.name,
            _now(env, key),
            after.get(key),
        )
        for key_of_dist, dist in sorted(env.dists.items())
        if key_of_dist not in skip
        for requirement in dist.requires
        for key in [canonicalize_name(requirement.name)]
        if key in changed and key in env.dists and not satisfies(requirement, after.get(key))
    ]


def _broken_plugins(
    plan: LoadPlan,
    env: Environment,
    after: Mapping[NormalizedName, str | None],
    changed: Collection[NormalizedName],
    *,
    skip: Collection[NormalizedName],
) -> list[Problem]:
    """A plugin's declared dependency on a plugin whose distribution changes or goes away."""
    by_key = {spec.key: spec for spec in plan.order}
    problems = []
    for spec in plan.order:
        own = spec.origin.distribution
        if own is not None and canonicalize_name(own) in skip:
            continue
        for requirement in spec.metadata.requirements:
            provider = by_key.get(canonicalize_name(requirement.name))
            dist = provider.origin.distribution if provider else None
            if provider is None or dist is None or canonicalize_name(dist) not in changed:
                continue
            new = after.get(canonicalize_name(dist))
            declared = provider.metadata.version
            same_as_dist = declared is None or declared == provider.origin.dist_version
            version = new if same_as_dist or new is None else declared
            if not satisfies(requirement, version):
                problems.append(
                    Problem(
                        "breaks-dependent",
                        f"plugin {spec.name} ({spec.origin})",
                        own,
                        None,
                        str(requirement),
                        f"{dist} (plugin {provider.name})",
                        provider.version,
                        new,
                    )
                )
    return problems


def check_unresolvable(planned: Sequence[Planned], env: Environment) -> tuple[Problem, ...]:
    """Why pip could not resolve ``planned`` (read with ``--no-deps``), if the host is the cause.

    A requirement on ksi-host or one of its dependencies that the installed version
    does not meet could only be met by changing the host, so it is the cause.
    """
    protected = env.protected()
    problems = list(_needs_host(planned, env))
    for p in planned:
        for requirement in p.requires:
            key = canonicalize_name(requirement.name)
            dist = env.get(key)
            if key == HOST_DIST or key not in protected or dist is None:
                continue
            if not satisfies(requirement, dist.version):
                problems.append(
                    Problem(
                        "changes-host",
                        p.name,
                        p.name,
                        p.version,
                        str(requirement),
                        dist.name,
                        dist.version,
                        str(requirement.specifier),
                    )
                )
    return tuple(problems)


def check_only_plugins(planned: Sequence[Planned], env: Environment) -> tuple[Problem, ...]:
    """Installed packages that are not plugin distributions and that ``planned`` would change."""
    protected = env.protected()
    return tuple(
        Problem(
            "not-a-plugin",
            "the lock file",
            None,
            None,
            f"{p.name}=={p.version}",
            dist.name,
            dist.version,
            p.version,
        )
        for p in planned
        if (dist := env.get(p.name)) is not None
        and not dist.is_plugin
        and p.key not in protected
        and dist.version != p.version
    )
