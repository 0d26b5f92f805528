"""Order plugins so every dependency starts before its dependents, and say why others cannot.

A pure function of its input (no I/O): specs in, :class:`~ksi_host._plan.LoadPlan` out.

- A dependency names a plugin (by canonical name) or a service some plugin lists in
  ``provides_services``; its specifier is checked against the provider's version.
  Only providers that can load count: a service two plugins provide is ambiguous
  only while both can load, and one whose every provider is out is a
  ``dependency-excluded`` leading to the provider's reason.
  Versions are installed ones, so a pre-release matches as ``pip check`` has it
  (``foo>=1.0`` accepts an installed ``foo 2.0rc1``).
  A requirement whose environment marker is false is ignored.
- ``ksi-host`` is a dependency like any other, provided by the host itself: in a
  plugin's ``dependencies`` or its distribution's ``Requires-Dist``, a version the
  running host does not match is a ``host-version`` reason.
- ``after_dependencies`` only order: an absent one is fine, one that will not load
  is a warning, and the plugin still loads.
- A command two loadable plugins declare is a ``duplicate-command`` warning unless
  ``command_choices`` (``[host] commands``) names the one that answers it.
- Every plugin that cannot load gets a typed :class:`~ksi_host._plan.Reason`; one that
  needs such a plugin gets ``dependency-excluded`` whose ``cause`` chain ends at the
  root cause. Everything else loads, in a topological order with ties broken by name.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from types import MappingProxyType
from typing import Final

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ksi_host import __version__
from ksi_host._discover import HOST_DISTRIBUTION
from ksi_host._host_version import HostMismatch, check_host
from ksi_host._plan import Exclusion, LoadPlan, PlanWarning, PluginSpec, Reason
from ksi_host._report import NullReporter, Reporter
from ksi_host._requirements import WrittenRequirement, parsed

__all__ = ["host_mismatch", "resolve"]

_MAX_NAMES: Final = 4096

_canonical: Final = functools.lru_cache(maxsize=_MAX_NAMES)(canonicalize_name)
"""packaging's ``canonicalize_name``, remembered per spelling: linking alone compares each
dependency's name four times."""


@functools.lru_cache(maxsize=_MAX_NAMES)
def _version(text: str) -> Version:
    """``Version(text)``, parsed once per spelling (providers are found by many dependents).

    Raises :class:`packaging.version.InvalidVersion` (never remembered).
    """
    return Version(text)


@dataclass(frozen=True)
class _Choice:
    """A service dependency with several providers, decided once the others have settled."""

    requirement: Requirement
    providers: tuple[str, ...]


def resolve(
    specs: Sequence[PluginSpec],
    *,
    excluded: Sequence[Exclusion] = (),
    service_choices: Mapping[str, str] | None = None,
    command_choices: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    marker_environment: Mapping[str, str] | None = None,
    host_version: str = __version__,
) -> LoadPlan:
    """Order plugins so every dependency starts before its dependents.

    ``excluded`` are plugins an earlier stage already ruled out (their dependents
    are excluded with them); ``service_choices`` maps a service to the plugin that
    should provide it when several do, ``command_choices`` a command to the plugin
    that answers it when several declare it; ``marker_environment`` overrides values
    of the running interpreter's environment markers; ``host_version`` is the
    version a requirement on ``ksi-host`` is checked against.
    """
    reporter = reporter or NullReporter()
    graph = _Graph(excluded, service_choices or {}, marker_environment or {}, host_version)
    for spec in specs:
        graph.add_plugin(spec)
    graph.link()
    graph.exclude_unresolved()
    order = graph.order()
    new = graph.new_exclusions()
    for exclusion in new:
        reporter.excluded(exclusion)
    loading = tuple(graph.plugins[key] for key in order)
    owners, command_warnings = _commands(loading, command_choices or {})
    return LoadPlan(
        order=loading,
        excluded=(*excluded, *new),
        requires=MappingProxyType({key: graph.starts_after(key) for key in order}),
        warnings=(*graph.warnings(order), *command_warnings),
        needs=MappingProxyType({key: graph.needed(key) for key in order}),
        commands=MappingProxyType(owners),
    )


def _commands(
    loading: Sequence[PluginSpec], choices: Mapping[str, str]
) -> tuple[dict[str, str], list[PlanWarning]]:
    """Who answers each command several plugins declare, and a warning where nobody chose."""
    claims: dict[str, list[PluginSpec]] = {}
    for spec in loading:
        for command in dict.fromkeys(spec.capabilities.commands):
            claims.setdefault(command, []).append(spec)
    owners: dict[str, str] = {}
    warnings = []
    for command, chosen in sorted(choices.items()):
        names = [spec.name for spec in claims.get(command, ())]
        match = [n for n in names if _canonical(n) == _canonical(chosen)]
        if match and len(names) > 1:
            owners[command] = match[0]
        elif not match:
            declared = f"declared by {', '.join(names)}" if names else "declared by no plugin"
            warnings.append(
                PlanWarning(
                    "choice-unused",
                    f"[host] commands chooses {chosen!r} for command {command!r}, but it is "
                    f"{declared}; fix the name or remove the choice",
                    "choose one of the plugins `ksi-host events` lists for that command",
                    tuple(names),
                )
            )
    for command, specs in sorted(claims.items()):
        if len(specs) > 1 and command not in owners:
            claimants = tuple(spec.name for spec in specs)
            warnings.append(
                PlanWarning(
                    "duplicate-command",
                    f"{' and '.join(claimants)} all declare the command {command!r}: each answers "
                    "it, and the reply is a 'multiple' of their answers",
                    f'choose the one that answers in the config: [host.commands] "{command}" '
                    f'= "{claimants[0]}", or disable all but one of them',
                    claimants,
                )
            )
    return owners, warnings


class _Graph:
    """The working state of one ``resolve`` call; nothing outlives the call."""

    def __init__(
        self,
        gone: Sequence[Exclusion],
        choices: Mapping[str, str],
        marker_overrides: Mapping[str, str],
        host_version: str,
    ) -> None:
        self.host_version = host_version
        self.gone: dict[str, Exclusion] = {}
        self.gone_services: dict[str, Exclusion] = {}
        for exclusion in gone:
            key = exclusion.spec.key if exclusion.spec else _canonical(exclusion.name)
            self.gone.setdefault(key, exclusion)
            if exclusion.spec is not None and exclusion.reason.code != "shadowed":
                for service in exclusion.spec.capabilities.provides_services:
                    self.gone_services.setdefault(_canonical(service), exclusion)
        self.choices = {_canonical(k): _canonical(v) for k, v in choices.items()}
        self.markers = {"extra": "", **marker_overrides}
        self.plugins: dict[str, PluginSpec] = {}
        self.providers: dict[str, list[str]] = {}
        self.shadowed: list[Exclusion] = []
        self.needs: dict[str, list[str]] = {}
        self.undecided: dict[str, list[_Choice]] = {}
        self.after: dict[str, list[str]] = {}
        self.dependents: dict[str, list[str]] = {}
        self.reasons: dict[str, Reason] = {}
        self.written: dict[tuple[str, str], str] = {}

    def add_plugin(self, spec: PluginSpec) -> None:
        winner = self.plugins.get(spec.key)
        if winner is None:
            self.plugins[spec.key] = spec
            return
        self.shadowed.append(Exclusion.shadowed(spec, by=winner))

    def link(self) -> None:
        """Resolve every dependency to a provider, or record the first that cannot be."""
        for key in sorted(self.plugins):
            for service in self.plugins[key].capabilities.provides_services:
                self.providers.setdefault(_canonical(service), []).append(key)
        for key in sorted(self.plugins):
            spec = self.plugins[key]
            self.needs[key] = []
            requirements = _requirements(spec)
            mismatch = host_mismatch(spec, self.host_version, self.markers, requirements)
            if mismatch is not None:
                self.reasons.setdefault(key, _host_reason(spec, mismatch))
            for requirement in requirements:
                if requirement.marker and not requirement.marker.evaluate(self.markers):
                    continue
                if _canonical(requirement.name) == HOST_DISTRIBUTION:
                    continue
                found = self._provider(spec, requirement)
                if isinstance(found, _Choice):
                    self.undecided.setdefault(key, []).append(found)
                else:
                    self._settle(key, found, requirement)
            wanted = (_canonical(name) for name in spec.metadata.after_dependencies)
            self.after[key] = [name for name in wanted if name in self.plugins and name != key]

    def _settle(self, key: str, found: str | Reason, requirement: Requirement) -> None:
        """Record a resolved dependency edge, or the first reason ``key`` cannot load."""
        if isinstance(found, Reason):
            self.reasons.setdefault(key, found)
            return
        if _canonical(requirement.name) == found:
            self.written[(key, found)] = _bare(requirement)
        else:
            self.written[(key, found)] = _service(requirement, [self.plugins[found].name])
        self.needs[key].append(found)
        self.dependents.setdefault(found, []).append(key)

    def _provider(self, spec: PluginSpec, requirement: Requirement) -> str | Reason | _Choice:
        name = _canonical(requirement.name)
        if name in self.plugins:
            return self._checked(spec, requirement, name)
        if name in self.providers:
            keys = self.providers[name]
            choice = self.choices.get(name, "")
            if len(keys) == 1 or choice in keys:
                return self._checked(spec, requirement, keys[0] if len(keys) == 1 else choice)
            if choice:
                return _ambiguous(spec, requirement, [self.plugins[k] for k in keys], choice)
            return _Choice(requirement, tuple(keys))
        if name in self.gone:
            return _needs_excluded(spec, _bare(requirement), self.gone[name].reason)
        if name in self.gone_services:
            gone = self.gone_services[name]
            return _needs_excluded(spec, _service(requirement, [gone.name]), gone.reason)
        return Reason(
            "missing-dependency",
            f"{spec.name} needs {_bare(requirement)}, but no plugin is named "
            f"or provides {requirement.name!r}",
            f"install a plugin that provides {requirement.name!r}, or disable {spec.name}",
            requirement=_bare(requirement),
        )

    def _checked(self, spec: PluginSpec, requirement: Requirement, provider: str) -> str | Reason:
        """``provider`` if its version matches ``requirement``, else the conflict."""
        service = None if _canonical(requirement.name) == provider else requirement.name
        conflict = _version_conflict(spec, requirement, self.plugins[provider], service)
        return conflict or provider

    def exclude_unresolved(self) -> None:
        """Spread exclusions to dependents, deciding multi-provider services as providers drop out.

        A service stays undecided while more than one of its providers may still load.
        When nothing else changes, a cycle among the settled edges is excluded first
        (it would be anyway); then the plugins whose providers are all settled are
        ambiguous, which may settle others (all of them at once if none is settled).
        """
        self._spread(sorted(self.reasons))
        while self.undecided:
            if self._decide_services():
                continue
            prepared = self._prepared()
            if isinstance(prepared, list):
                self._exclude_cycle(prepared)
                continue
            ambiguous = self._certainly_ambiguous() or self._ambiguous_choices(set())
            self.reasons.update(ambiguous)
            for key in ambiguous:
                del self.undecided[key]
            self._spread(sorted(ambiguous))

    def _decide_services(self) -> bool:
        """Settle each undecided service left with at most one provider that can load."""
        changed = []
        for key in sorted(self.undecided):
            spec, left = self.plugins[key], []
            for choice in self.undecided[key]:
                live = [k for k in choice.providers if k not in self.reasons]
                if key in self.reasons or len(live) > 1:
                    left.append(choice)
                elif live:
                    found = self._checked(spec, choice.requirement, live[0])
                    self._settle(key, found, choice.requirement)
                else:
                    names = [self.plugins[k].name for k in choice.providers]
                    cause = self.reasons[choice.providers[0]]
                    dependency = _service(choice.requirement, names)
                    self._settle(key, _needs_excluded(spec, dependency, cause), choice.requirement)
            if key in self.reasons or not left:
                del self.undecided[key]
                changed.append(key)
            else:
                self.undecided[key] = left
        self._spread([key for key in changed if key in self.reasons])
        return bool(changed)

    def _certainly_ambiguous(self) -> dict[str, Reason]:
        """Undecided plugins with a service whose live providers no undecided choice can drop."""
        at_risk = set(self.undecided)
        queue = deque(self.undecided)
        while queue:
            for dependent in self.dependents.get(queue.popleft(), ()):
                if dependent not in at_risk:
                    at_risk.add(dependent)
                    queue.append(dependent)
        return self._ambiguous_choices(at_risk)

    def _ambiguous_choices(self, at_risk: set[str]) -> dict[str, Reason]:
        """Ambiguity reasons for undecided plugins with a service whose live providers are safe."""
        found = {}
        for key, choices in self.undecided.items():
            for choice in choices:
                live = [k for k in choice.providers if k not in self.reasons]
                if not at_risk.intersection(live):
                    providers = [self.plugins[k] for k in live]
                    found[key] = _ambiguous(self.plugins[key], choice.requirement, providers, "")
                    break
        return found

    def _prepared(self) -> TopologicalSorter[str] | list[str]:
        """A sorter of the plugins left, ready to drain, or a cycle among their edges."""
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for key in sorted(self.plugins):
            if key not in self.reasons:
                sorter.add(key, *self.starts_after(key))
        try:
            sorter.prepare()
        except CycleError as exc:
            return list(reversed(exc.args[1][:-1]))
        return sorter

    def _spread(self, roots: Sequence[str]) -> None:
        queue = deque(roots)
        while queue:
            key = queue.popleft()
            for dependent in self.dependents.get(key, ()):
                if dependent not in self.reasons:
                    spec = self.plugins[dependent]
                    dependency = self.written.get((dependent, key), self.plugins[key].name)
                    self.reasons[dependent] = _needs_excluded(spec, dependency, self.reasons[key])
                    queue.append(dependent)

    def order(self) -> list[str]:
        """Load order of what is left; each cycle found is excluded and the rest retried."""
        while True:
            prepared = self._prepared()
            if not isinstance(prepared, list):
                return _smallest_first(prepared)
            self._exclude_cycle(prepared)

    def _exclude_cycle(self, cycle: list[str]) -> None:
        names = [self.plugins[key].name for key in cycle]
        for index, key in enumerate(cycle):
            path = (*names[index:], *names[:index], names[index])
            self.reasons[key] = Reason(
                "cycle",
                f"{names[index]} is in a dependency cycle: {' -> '.join(path)}",
                "break the cycle: drop one of these dependencies or after_dependencies",
                cycle=path,
            )
        self._spread(sorted(cycle))

    def needed(self, key: str) -> tuple[str, ...]:
        return tuple(sorted(dep for dep in self.needs[key] if dep not in self.reasons))

    def starts_after(self, key: str) -> tuple[str, ...]:
        edges = {*self.needs[key], *self.after[key]}
        return tuple(sorted(dep for dep in edges if dep not in self.reasons))

    def new_exclusions(self) -> tuple[Exclusion, ...]:
        resolved = (
            Exclusion(self.plugins[key].name, self.plugins[key].origin, reason, self.plugins[key])
            for key, reason in sorted(self.reasons.items())
        )
        return (*self.shadowed, *resolved)

    def warnings(self, order: Sequence[str]) -> tuple[PlanWarning, ...]:
        """After-dependencies that will not load, and service choices that choose nothing."""
        notes = [
            PlanWarning(
                "choice-unused",
                f"[host] services chooses {chosen!r} for service {service!r}, but "
                + (
                    f"it is provided by {', '.join(self.providers[service])}"
                    if service in self.providers
                    else "no plugin found provides it"
                )
                + "; fix the name or remove the choice",
                "choose one of the providers `ksi-host plugins` lists",
                tuple(self.providers.get(service, ())),
            )
            for service, chosen in sorted(self.choices.items())
            if chosen not in self.providers.get(service, ())
        ]
        for key in order:
            spec = self.plugins[key]
            for name in spec.metadata.after_dependencies:
                reason = self._why_not_loading(_canonical(name))
                if reason is not None:
                    notes.append(
                        PlanWarning(
                            "after-dependency-excluded",
                            f"{spec.name} starts after {name} when present, but {name} will "
                            f"not load ({reason.code}); {spec.name} loads anyway",
                            f"fix {name} (see its reason) if {spec.name} needs it",
                            (spec.name,),
                        )
                    )
        return tuple(notes)

    def _why_not_loading(self, key: str) -> Reason | None:
        if key in self.plugins:
            return self.reasons.get(key)
        exclusion = self.gone.get(key)
        return exclusion.reason if exclusion else None


def _smallest_first(sorter: TopologicalSorter[str]) -> list[str]:
    """Drain a prepared sorter taking the smallest ready name each time."""
    ready = list(sorter.get_ready())
    heapq.heapify(ready)
    order = []
    while ready:
        key = heapq.heappop(ready)
        order.append(key)
        sorter.done(key)
        for node in sorter.get_ready():
            heapq.heappush(ready, node)
    return order


def host_mismatch(
    spec: PluginSpec,
    host_version: str,
    markers: Mapping[str, str] | None = None,
    requirements: Sequence[Requirement] | None = None,
) -> HostMismatch | None:
    """The first requirement on ksi-host of ``spec`` (declared or in Requires-Dist) not met.

    ``markers`` overrides values of the running interpreter's environment markers;
    ``requirements`` are ``spec``'s, when the caller has parsed them already.
    """
    environment = {"extra": "", **(markers or {})}
    for requirement in _requirements(spec) if requirements is None else requirements:
        if _canonical(requirement.name) != HOST_DISTRIBUTION:
            continue
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        declared = any(requirement is own for own in spec.metadata.requirements)
        where = "its dependencies" if declared else f"{spec.origin.distribution}'s Requires-Dist"
        found = check_host(
            requirement,
            host_version=host_version,
            subject=spec.name,
            declared_in=where,
            written=_bare(requirement),
        )
        if found is not None:
            return found
    return None


def _host_reason(spec: PluginSpec, mismatch: HostMismatch) -> Reason:
    return Reason(
        "host-version",
        mismatch.message(),
        f"upgrade ksi-host: {mismatch.upgrade_command()}, or install a version of "
        f"{spec.name} made for ksi-host {mismatch.host_version}",
        requirement=mismatch.requirement,
    )


def _requirements(spec: PluginSpec) -> list[Requirement]:
    """The plugin's declared dependencies, plus its distribution's requirement on ksi-host.

    Each is parsed once for validation and the resolver together (:mod:`ksi_host._requirements`).
    """
    found: list[Requirement] = list(spec.metadata.requirements)
    if spec.origin.host_requirement is not None:
        found.append(parsed(spec.origin.host_requirement))
    return found


def _bare(requirement: Requirement) -> str:
    """The requirement without its marker, as written: the part the message is about."""
    if isinstance(requirement, WrittenRequirement):
        return requirement.written
    return f"{requirement.name}{requirement.specifier}"


def _version_conflict(
    spec: PluginSpec, requirement: Requirement, provider: PluginSpec, service: str | None
) -> Reason | None:
    specifier = requirement.specifier
    if not specifier:
        return None
    found = provider.version
    problem = "" if found is None else _version_problem(found, specifier)
    if problem is None:
        return None
    via = f" (provides {service!r})" if service else ""
    where = f"{provider.name} {found or 'with no version'}{via} from {provider.origin}"
    hint = (
        f"install a version of {provider.name} that matches '{specifier}', or disable {spec.name}"
    )
    if found is None:
        hint = f"give {provider.name} a version; {hint}"
    return Reason(
        "version-conflict",
        f"{spec.name} needs {_bare(requirement)}, but found {where}{problem}",
        hint,
        requirement=_bare(requirement),
        providers=(provider.name,),
    )


def _version_problem(found: str, specifier: SpecifierSet) -> str | None:
    """None when ``found`` matches, else what to add to the conflict's message."""
    try:
        version = _version(found)
    except InvalidVersion:
        return " (not a PEP 440 version)"
    return None if specifier.contains(version, prereleases=True) else ""


def _ambiguous(
    spec: PluginSpec, requirement: Requirement, providers: Sequence[PluginSpec], choice: str
) -> Reason:
    service = requirement.name
    names = ", ".join(provider.name for provider in providers)
    chosen = f"; the configured choice {choice!r} is not one of them" if choice else ""
    return Reason(
        "ambiguous-service",
        f"{spec.name} needs service {service!r}, which {len(providers)} plugins provide: "
        f"{names}{chosen}",
        f"choose one in the service choices ({service} = {providers[0].name!r}), "
        "or disable all but one of them",
        requirement=_bare(requirement),
        providers=tuple(provider.name for provider in providers),
    )


def _service(requirement: Requirement, providers: Sequence[str]) -> str:
    """A service dependency, as written, named with the plugins that provide it."""
    return f"{_bare(requirement)} (provided by {', '.join(providers)})"


def _needs_excluded(spec: PluginSpec, dependency: str, cause: Reason) -> Reason:
    return Reason(
        "dependency-excluded",
        f"{spec.name} needs {dependency}, which will not load ({cause.code})",
        f"fix {dependency} (see the cause), or disable {spec.name}",
        cause=cause,
        requirement=dependency,
    )
