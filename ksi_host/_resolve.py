"""Order plugins so every dependency starts before its dependents, and say why others cannot.

A pure function of its input (no I/O): specs in, :class:`~ksi_host._plan.LoadPlan` out.

- A dependency names a plugin (by canonical name) or a service some plugin lists in
  ``provides_services``; its specifier is checked against the provider's version.
  A pre-release only matches a specifier that names a pre-release itself.
  A requirement whose environment marker is false is ignored.
- ``after_dependencies`` only order: an absent one is fine, one that will not load
  is a warning, and the plugin still loads.
- Every plugin that cannot load gets a typed :class:`~ksi_host._plan.Reason`; one that
  needs such a plugin gets ``dependency-excluded`` whose ``cause`` chain ends at the
  root cause. Everything else loads, in a topological order with ties broken by name.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from types import MappingProxyType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ksi_host._plan import Exclusion, LoadPlan, PluginSpec, Reason
from ksi_host._report import NullReporter, Reporter

__all__ = ["resolve"]


def resolve(
    specs: Sequence[PluginSpec],
    *,
    excluded: Sequence[Exclusion] = (),
    service_choices: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    marker_environment: Mapping[str, str] | None = None,
) -> LoadPlan:
    """Order plugins so every dependency starts before its dependents.

    ``excluded`` are plugins an earlier stage already ruled out (their dependents
    are excluded with them); ``service_choices`` maps a service to the plugin that
    should provide it when several do; ``marker_environment`` overrides values of
    the running interpreter's environment markers.
    """
    reporter = reporter or NullReporter()
    graph = _Graph(excluded, service_choices or {}, marker_environment or {})
    for spec in specs:
        graph.add_plugin(spec)
    graph.link()
    graph.exclude_unresolved()
    order = graph.order()
    new = graph.new_exclusions()
    for exclusion in new:
        reporter.excluded(exclusion)
    return LoadPlan(
        order=tuple(graph.plugins[key] for key in order),
        excluded=(*excluded, *new),
        requires=MappingProxyType({key: graph.starts_after(key) for key in order}),
        warnings=graph.warnings(order),
    )


class _Graph:
    """The working state of one ``resolve`` call; nothing outlives the call."""

    def __init__(
        self,
        gone: Sequence[Exclusion],
        choices: Mapping[str, str],
        marker_overrides: Mapping[str, str],
    ) -> None:
        self.gone: dict[str, Exclusion] = {}
        for exclusion in gone:
            key = exclusion.spec.key if exclusion.spec else canonicalize_name(exclusion.name)
            self.gone.setdefault(key, exclusion)
        self.choices = {canonicalize_name(k): canonicalize_name(v) for k, v in choices.items()}
        self.markers = {"extra": "", **marker_overrides}
        self.plugins: dict[str, PluginSpec] = {}
        self.providers: dict[str, list[str]] = {}
        self.shadowed: list[Exclusion] = []
        self.needs: dict[str, list[str]] = {}
        self.after: dict[str, list[str]] = {}
        self.dependents: dict[str, list[str]] = {}
        self.reasons: dict[str, Reason] = {}

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
                self.providers.setdefault(canonicalize_name(service), []).append(key)
        for key in sorted(self.plugins):
            spec = self.plugins[key]
            self.needs[key] = []
            for requirement in spec.metadata.requirements:
                if requirement.marker and not requirement.marker.evaluate(self.markers):
                    continue
                found = self._provider(spec, requirement)
                if isinstance(found, Reason):
                    self.reasons.setdefault(key, found)
                else:
                    self.needs[key].append(found)
                    self.dependents.setdefault(found, []).append(key)
            wanted = (canonicalize_name(name) for name in spec.metadata.after_dependencies)
            self.after[key] = [name for name in wanted if name in self.plugins and name != key]

    def _provider(self, spec: PluginSpec, requirement: Requirement) -> str | Reason:
        name = canonicalize_name(requirement.name)
        service = None
        provider: str
        if name in self.plugins:
            provider = name
        elif name in self.providers:
            service = requirement.name
            keys = self.providers[name]
            provider = keys[0] if len(keys) == 1 else self.choices.get(name, "")
            if provider not in keys:
                return _ambiguous(spec, requirement, [self.plugins[k] for k in keys], provider)
        elif name in self.gone:
            return _needs_excluded(spec, requirement.name, self.gone[name].reason)
        else:
            return Reason(
                "missing-dependency",
                f"{spec.name} needs {_bare(requirement)}, but no plugin is named "
                f"or provides {requirement.name!r}",
                f"install a plugin that provides {requirement.name!r}, or disable {spec.name}",
                requirement=_bare(requirement),
            )
        conflict = _version_conflict(spec, requirement, self.plugins[provider], service)
        return conflict or provider

    def exclude_unresolved(self) -> None:
        """Spread exclusions from plugins with unresolved dependencies to their dependents."""
        for targets in self.dependents.values():
            targets.sort()
        self._spread(sorted(self.reasons))

    def _spread(self, roots: Sequence[str]) -> None:
        queue = deque(roots)
        while queue:
            key = queue.popleft()
            for dependent in self.dependents.get(key, ()):
                if dependent not in self.reasons:
                    spec = self.plugins[dependent]
                    dependency = self.plugins[key].name
                    self.reasons[dependent] = _needs_excluded(spec, dependency, self.reasons[key])
                    queue.append(dependent)

    def order(self) -> list[str]:
        """Load order of what is left; each cycle found is excluded and the rest retried."""
        while True:
            sorter: TopologicalSorter[str] = TopologicalSorter()
            for key in sorted(self.plugins):
                if key not in self.reasons:
                    sorter.add(key, *self.starts_after(key))
            try:
                sorter.prepare()
            except CycleError as exc:
                self._exclude_cycle(list(reversed(exc.args[1][:-1])))
                continue
            return _smallest_first(sorter)

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

    def starts_after(self, key: str) -> tuple[str, ...]:
        edges = {*self.needs[key], *self.after[key]}
        return tuple(sorted(dep for dep in edges if dep not in self.reasons))

    def new_exclusions(self) -> tuple[Exclusion, ...]:
        resolved = (
            Exclusion(self.plugins[key].name, self.plugins[key].origin, reason, self.plugins[key])
            for key, reason in sorted(self.reasons.items())
        )
        return (*self.shadowed, *resolved)

    def warnings(self, order: Sequence[str]) -> tuple[str, ...]:
        """After-dependencies that are present but will not load: ordered around, not fatal."""
        notes = []
        for key in order:
            spec = self.plugins[key]
            for name in spec.metadata.after_dependencies:
                reason = self._why_not_loading(canonicalize_name(name))
                if reason is not None:
                    notes.append(
                        f"{spec.name} starts after {name} when present, but {name} will not load "
                        f"({reason.code}); {spec.name} loads anyway"
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


def _bare(requirement: Requirement) -> str:
    """The requirement without its marker: the part the message is about."""
    return f"{requirement.name}{requirement.specifier}"


def _version_conflict(
    spec: PluginSpec, requirement: Requirement, provider: PluginSpec, service: str | None
) -> Reason | None:
    specifier = requirement.specifier
    if not specifier:
        return None
    found = provider.version
    via = f" (provides {service!r})" if service else ""
    where = f"{provider.name} {found or 'with no version'}{via} from {provider.origin}"
    message = f"{spec.name} needs {_bare(requirement)}, but found {where}"
    hint = (
        f"install a version of {provider.name} that matches '{specifier}', or disable {spec.name}"
    )

    def conflict(message: str, hint: str) -> Reason:
        bare, found_by = _bare(requirement), (provider.name,)
        return Reason("version-conflict", message, hint, requirement=bare, providers=found_by)

    if found is None:
        return conflict(message, f"give {provider.name} a version; {hint}")
    try:
        version = Version(found)
    except InvalidVersion:
        return conflict(message + " (not a PEP 440 version)", hint)
    if specifier.contains(version, prereleases=bool(specifier.prereleases)):
        return None
    if version.is_prerelease and specifier.contains(version, prereleases=True):
        hint += f"; {found} is a pre-release, which only a specifier naming one accepts"
    return conflict(message, hint)


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


def _needs_excluded(spec: PluginSpec, dependency: str, cause: Reason) -> Reason:
    return Reason(
        "dependency-excluded",
        f"{spec.name} needs {dependency}, which will not load ({cause.code})",
        f"fix {dependency} (see the cause), or disable {spec.name}",
        cause=cause,
        requirement=dependency,
    )
