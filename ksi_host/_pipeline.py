"""The whole way from plugin sources to a host: discover -> describe -> vet -> resolve -> load."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ksi_host import _crash_record as crash_record
from ksi_host._collector import paused
from ksi_host._describe import describe
from ksi_host._discover import BUILTIN_PACKAGE, disabled_names, discover
from ksi_host._manifest_cache import ManifestCache
from ksi_host._plan import Candidate, Exclusion, LoadPlan, PluginSpec
from ksi_host._quarantine import Quarantine, StartMarker
from ksi_host._report import Reporter
from ksi_host._resolve import resolve
from ksi_host._trust import TrustPolicy
from ksi_host._vet import vet

if TYPE_CHECKING:
    from ksi_host._config import HostConfig, HostSection
    from ksi_host._lifecycle import Host
    from ksi_host._trace import TraceSettings

__all__ = ["DaemonRun", "boot", "build_plan", "plan_for"]


@paused()
def build_plan(
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    disabled: Collection[str] = (),
    service_choices: Mapping[str, str] | None = None,
    command_choices: Mapping[str, str] | None = None,
    sections: Mapping[str, Any] | None = None,
    trust: TrustPolicy | None = None,
    reporter: Reporter | None = None,
    builtin_package: str | None = BUILTIN_PACKAGE,
    host: HostSection | None = None,
    kept_descriptions: bool = False,
) -> LoadPlan:
    """Find, import, vet and order every plugin; what cannot run is in ``excluded`` with why.

    ``sections`` maps canonical plugin names to their config sections, checked
    against each plugin's ``config_model``; ``trust`` says which plugin files may run.
    A plugin in the quarantine (:mod:`ksi_host._quarantine`) is not imported, nor is
    one ``host.isolated`` names: it is described in a worker (:mod:`ksi_host._isolation`).
    ``kept_descriptions`` describes the plugins :mod:`ksi_host._described_cache` kept
    without importing them (a plan only listed; a host imports every plugin anyway).
    """
    env = os.environ if env is None else env
    candidates = discover(
        paths=paths, env=env, disabled=disabled, reporter=reporter, builtin_package=builtin_package
    )
    loadable, quarantined = Quarantine.from_env(env).split(candidates)
    isolated_specs: Sequence[PluginSpec] = ()
    isolated_excluded: Sequence[Exclusion] = ()
    if host is not None and host.isolated:
        from ksi_host._isolation import describe_isolated, is_isolated  # worker machinery

        apart = [c for c in loadable if c.disabled_by is None and is_isolated(c, host.isolated)]
        loadable = [c for c in loadable if c not in apart]
        isolated_specs, isolated_excluded = describe_isolated(apart, host, sections or {})
    off = disabled_names(disabled, env)
    cache = ManifestCache.load(env)
    known = None
    if kept_descriptions:  # listing only: the daemon and doctor never import it
        from ksi_host._described_cache import DescribedCache

        known = DescribedCache.load(env, sections)
    described = vet(
        describe(loadable, reporter, disabled=off, trust=trust, cache=cache, known=known),
        sections or {},
        reporter,
    )
    kept_out = _as_declared(quarantined, cache)
    cache.save()
    if known is not None:
        known.keep(described.specs)
        known.save()
    plan = resolve(
        (*described.specs, *isolated_specs),
        excluded=(*described.excluded, *isolated_excluded, *kept_out),
        service_choices=service_choices,
        command_choices=command_choices,
        reporter=reporter,
    )
    return replace(plan, warnings=(*described.warnings, *plan.warnings))


def _as_declared(
    quarantined: Sequence[tuple[Candidate, Exclusion]], cache: ManifestCache
) -> list[Exclusion]:
    """Quarantined plugins with what their manifest declares, read without importing them.

    The host can then say why an event one of them declares goes unanswered.
    """
    declared = [candidate for candidate, _ in quarantined if candidate.manifest is not None]
    specs = {spec.origin: spec for spec in describe(declared, cache=cache).specs}
    return [
        replace(exclusion, spec=specs.get(candidate.origin)) for candidate, exclusion in quarantined
    ]


def plan_for(
    config: HostConfig,
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    kept_descriptions: bool = False,
) -> LoadPlan:
    """The plan a host with ``config`` runs: paths from the caller first, then ``[host]``.

    ``kept_descriptions``: see :func:`build_plan`.
    """
    return build_plan(
        paths=(*paths, *config.host.plugin_paths),
        env=env,
        disabled=config.host.disabled,
        service_choices=config.host.services,
        command_choices=config.host.commands,
        sections=config.sections_by_key(),
        trust=TrustPolicy.of(config.host.trust_paths),
        reporter=reporter,
        host=config.host,
        kept_descriptions=kept_descriptions,
    )


def boot(
    config: HostConfig,
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    trace: TraceSettings | None = None,
    marker: StartMarker | None = None,
) -> Host:
    """A host for ``config``, ready to ``start()``: every stage of the pipeline in order.

    The host can build its plan again the same way (``Host.reload``), with the
    plugin paths loaded since (``Host.load``) after ``paths``.
    """
    from ksi_host._lifecycle import Host  # the daemon's machinery; plans do not need it
    from ksi_host._reload import InstalledSince

    def planner(loaded: Sequence[str]) -> LoadPlan:
        return plan_for(config, paths=(*paths, *loaded), env=env, reporter=reporter)

    return Host(
        planner(()),
        config,
        trace=trace,
        planner=planner,
        installed_since=InstalledSince(env),
        marker=marker,
    )


class DaemonRun:
    """What ``ksi-host run`` starts once its socket is claimed: boot and start, crash-safe.

    Plugins are imported and started under the start marker (:mod:`ksi_host._quarantine`),
    after the one left by a daemon that died starting has been turned into a quarantine;
    every call into a plugin is kept in the crash record at ``record``
    (:mod:`ksi_host._crash_record`), which the next start reads if this daemon dies.
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        paths: Sequence[str | Path],
        marker: StartMarker,
        record: Path,
        trace: TraceSettings | None = None,
    ) -> None:
        self.config: Final = config
        self.paths: Final = tuple(paths)
        self.marker: Final = marker
        self.record: Final = record
        self.trace: Final = trace
        self.host: Host | None = None

    async def start(self) -> None:
        crash = crash_record.recover(self.record)
        self.marker.recover(running=crash.plugin if crash is not None else None)
        crash_record.attach(self.record)
        self.host = boot(
            self.config,
            paths=self.paths,
            reporter=self.marker,
            trace=self.trace,
            marker=self.marker,
        )
        await self.host.start()

    async def stop(self) -> None:
        if self.host is not None:
            await self.host.stop()
        crash_record.detach()

    async def reload(self) -> None:
        """SIGHUP: the running host adopts the plugins installed now (see ``Host.reload``)."""
        if self.host is not None:
            await self.host.reload()
