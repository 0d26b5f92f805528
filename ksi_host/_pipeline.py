"""The whole way from plugin sources to a host: discover -> describe -> vet -> resolve -> load."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ksi_host._describe import describe
from ksi_host._discover import BUILTIN_PACKAGE, disabled_names, discover
from ksi_host._plan import LoadPlan
from ksi_host._report import Reporter
from ksi_host._resolve import resolve
from ksi_host._trust import TrustPolicy
from ksi_host._vet import vet

if TYPE_CHECKING:
    from ksi_host._config import HostConfig
    from ksi_host._lifecycle import Host
    from ksi_host._trace import TraceSettings

__all__ = ["boot", "build_plan", "plan_for"]


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
) -> LoadPlan:
    """Find, import, vet and order every plugin; what cannot run is in ``excluded`` with why.

    ``sections`` maps canonical plugin names to their config sections, checked
    against each plugin's ``config_model``; ``trust`` says which plugin files may run.
    """
    env = os.environ if env is None else env
    candidates = discover(
        paths=paths, env=env, disabled=disabled, reporter=reporter, builtin_package=builtin_package
    )
    off = disabled_names(disabled, env)
    described = vet(
        describe(candidates, reporter, disabled=off, trust=trust), sections or {}, reporter
    )
    plan = resolve(
        described.specs,
        excluded=described.excluded,
        service_choices=service_choices,
        command_choices=command_choices,
        reporter=reporter,
    )
    return replace(plan, warnings=(*described.warnings, *plan.warnings))


def plan_for(
    config: HostConfig,
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
) -> LoadPlan:
    """The plan a host with ``config`` runs: paths from the caller first, then ``[host]``."""
    return build_plan(
        paths=(*paths, *config.host.plugin_paths),
        env=env,
        disabled=config.host.disabled,
        service_choices=config.host.services,
        command_choices=config.host.commands,
        sections=config.sections_by_key(),
        trust=TrustPolicy.of(config.host.trust_paths),
        reporter=reporter,
    )


def boot(
    config: HostConfig,
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    trace: TraceSettings | None = None,
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
    )
