"""``ksi-host doctor``: the host's own plan, with a problem and a pasteable fix for each flaw.

The same stages as :func:`ksi_host._pipeline.build_plan`, in two phases:

- the plan: a plugin that ships a ``ksi-plugin.toml`` is described from it here,
  importing nothing, as ``plugins`` and ``run`` plan it; the others are described and
  vetted (imported) in a worker process (:mod:`ksi_host._doctor.isolate`), so a plugin
  that crashes, hangs or exits cannot take doctor down. The worker's findings are
  turned back into :class:`~ksi_host._plan.PluginSpec` and
  :class:`~ksi_host._plan.Exclusion` values and given to the one resolver, so every
  verdict is the host's own;
- the import check: the same worker imports the plugins planned from a manifest
  too, as the host does when it starts (or activates) them, and each that does
  not import, fails the host's checks or disagrees with its manifest is an error,
  with the fix. Its verdict stays the plan's (``run`` fails it when it imports it,
  as it fails one whose ``ksi_startup`` raises), so doctor says what ``plugins`` says.

No plugin is ever started; when a daemon answers on the configured socket, what it
knows (a plugin that failed to start, or one it does not run) is merged in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import importlib_metadata

from ksi_host._daemon_view import verdicts
from ksi_host._defaults import DOCTOR_IMPORT_TIMEOUT
from ksi_host._describe import describe
from ksi_host._discover import disabled_names, discover
from ksi_host._doctor.checks import (
    check_config,
    check_distributions,
    check_folders,
    plugin_folders,
)
from ksi_host._doctor.fixes import Fixes
from ksi_host._doctor.isolate import import_isolated
from ksi_host._doctor.nats import check_nats
from ksi_host._doctor.outcome import Outcome, outcome
from ksi_host._doctor.report import DoctorReport, Problem, Summary
from ksi_host._paths import KsiPaths
from ksi_host._plan import Candidate, LoadPlan
from ksi_host._quarantine import Quarantine
from ksi_host._resolve import resolve
from ksi_host._schema import PluginEntry, warning_reports
from ksi_host._trust import TrustPolicy

__all__ = ["diagnose"]

_LIVE_TROUBLE = ("failed", "not-running")


def diagnose(
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    timeout: float = DOCTOR_IMPORT_TIMEOUT,
    socket_path: Path | None = None,
) -> DoctorReport:
    """Check every plugin source, import, dependency and the config; never start a plugin.

    The config is read as the host reads it (``config_file``, else ``KSI_CONFIG``, else
    the user's config dir), so its ``[host]`` settings apply here as they do to ``run``.
    ``socket_path`` is where a running daemon may be asked what it knows.
    Raises :class:`~ksi_host.errors.ConfigError` for a bad ``KSI_DISABLE_PLUGINS``.
    """
    env = os.environ if env is None else env
    config_path = config_file or KsiPaths.from_env(env).config_file
    config, sections, problems = check_config(config_file, env)
    disabled: Sequence[str] = ()
    service_choices: Mapping[str, str] = {}
    command_choices: Mapping[str, str] = {}
    trust_paths: Sequence[str] = ()
    if config is not None:
        paths = (*paths, *config.host.plugin_paths)
        disabled = config.host.disabled
        service_choices = config.host.services
        command_choices = config.host.commands
        trust_paths = config.host.trust_paths
    off = disabled_names(disabled, env)
    candidates = discover(paths=paths, env=env, disabled=disabled)
    loadable, quarantined = Quarantine.from_env(env).split(candidates)
    results = import_isolated(
        loadable, disabled=off, sections=sections, trust_paths=trust_paths, timeout=timeout
    )
    outcomes: list[Outcome] = []
    checks: list[Outcome] = []
    for candidate, result in zip(loadable, results, strict=True):
        imported = outcome(candidate, result)
        planned = _planned_from_manifest(candidate, imported, off)
        if planned is None:
            outcomes.append(imported)
            continue
        outcomes.append(planned)
        if planned.spec is not None and imported.exclusion is not None:
            checks.append(imported)
    outcomes += [Outcome(candidate, exclusion=exclusion) for candidate, exclusion in quarantined]
    specs = [o.spec for o in outcomes if o.spec is not None]
    plan = resolve(
        specs,
        excluded=[o.exclusion for o in outcomes if o.exclusion is not None],
        service_choices=service_choices,
        command_choices=command_choices,
    )
    described = tuple(warning for found in outcomes for warning in found.warnings)
    plan = replace(plan, warnings=(*described, *plan.warnings))
    trust = TrustPolicy.of(trust_paths)
    fixes = Fixes(plan, outcomes, env=env, disabled=off, config_path=config_path, trust=trust)
    problems += [fixes.problem(exclusion) for exclusion in plan.excluded]
    problems += _failed_checks(checks, plan, env, off, config_path, trust)
    problems += [fixes.warning(warning) for warning in plan.warnings]
    problems += fixes.unknown_sections(sections)
    problems += check_distributions(importlib_metadata.distributions())
    refused = {e.reason.path or "" for e in plan.excluded if e.reason.code == "untrusted"}
    problems += check_folders(plugin_folders(paths, env), trust, refused)
    problems += check_nats(config, config_path)
    entries, daemon = verdicts(plan, socket_path if config is not None else None)
    if daemon is not None:
        live = [e for e in entries if e.position is not None and e.status in _LIVE_TROUBLE]
        problems += [fixes.live(entry, daemon) for entry in live]
    return _report(outcomes, plan, entries, daemon, problems)


def _planned_from_manifest(
    candidate: Candidate, imported: Outcome, disabled: Mapping[str, str]
) -> Outcome | None:
    """The candidate as the plan sees it from its ``ksi-plugin.toml`` (no import), if it has one.

    The worker's timing is kept: the report shows how long importing it takes.
    """
    if candidate.manifest is None or candidate.disabled_by is not None:
        return None
    described = describe([candidate], disabled=disabled)
    return Outcome(
        candidate,
        spec=described.specs[0] if described.specs else None,
        exclusion=described.excluded[0] if described.excluded else None,
        seconds=imported.seconds,
        source_file=imported.source_file,
        warnings=described.warnings,
    )


def _failed_checks(
    checks: Sequence[Outcome],
    plan: LoadPlan,
    env: Mapping[str, str],
    disabled: Mapping[str, str],
    config_path: Path,
    trust: TrustPolicy,
) -> list[Problem]:
    """An error for each plugin planned from its manifest that importing it refutes."""
    fixes = Fixes(plan, checks, env=env, disabled=disabled, config_path=config_path, trust=trust)
    note = (
        "it is planned from its ksi-plugin.toml, so `ksi-host plugins` lists it; "
        "`ksi-host run` fails it when it imports it"
    )
    problems = []
    for check in checks:
        assert check.exclusion is not None
        problem = fixes.problem(check.exclusion)
        joined = f"{problem.note}; {note}" if problem.note else note
        problems.append(problem.model_copy(update={"severity": "error", "note": joined}))
    return problems


def _report(
    outcomes: Sequence[Outcome],
    plan: LoadPlan,
    entries: list[PluginEntry],
    daemon: str | None,
    problems: list[Problem],
) -> DoctorReport:
    took = {
        str(found.candidate.origin): round(found.seconds * 1000, 1)
        for found in outcomes
        if found.seconds is not None
    }
    plugins = [entry.model_copy(update={"import_ms": took.get(entry.source)}) for entry in entries]
    errors = sum(problem.severity == "error" for problem in problems)
    without = [entry.name for entry in plugins if entry.status in ("excluded", *_LIVE_TROUBLE)]
    summary = Summary(
        plugins=len(plugins),
        loadable=len(plan.order),
        errors=errors,
        warnings=sum(problem.severity == "warning" for problem in problems),
        ok=errors == 0,
        without=without,
    )
    return DoctorReport(
        plugins=plugins,
        warnings=warning_reports(plan.warnings),
        daemon=daemon,
        problems=problems,
        summary=summary,
    )
