"""``ksi-host doctor``: the host's own plan, with a problem and a pasteable fix for each flaw.

The same stages as :func:`ksi_host._pipeline.build_plan`, except that describing
(importing) runs in a worker process (:mod:`ksi_host._doctor.isolate`), so a plugin
that crashes, hangs or exits cannot take doctor down. The worker's findings are
turned back into :class:`~ksi_host._plan.PluginSpec` and
:class:`~ksi_host._plan.Exclusion` values and given to the one resolver, so every
dependency verdict is the host's own. No plugin is ever started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import importlib_metadata

from ksi_host._defaults import DOCTOR_IMPORT_TIMEOUT
from ksi_host._discover import disabled_names, discover
from ksi_host._doctor.checks import check_config, check_distributions, check_folders, plugin_folders
from ksi_host._doctor.fixes import Fixes
from ksi_host._doctor.isolate import import_isolated
from ksi_host._doctor.nats import check_nats
from ksi_host._doctor.outcome import Outcome, outcome
from ksi_host._doctor.report import DoctorReport, PluginLine, PluginStatus, Problem, Summary
from ksi_host._paths import KsiPaths
from ksi_host._plan import Exclusion, LoadPlan
from ksi_host._resolve import resolve

__all__ = ["diagnose"]

_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def diagnose(
    *,
    paths: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    timeout: float = DOCTOR_IMPORT_TIMEOUT,
) -> DoctorReport:
    """Check every plugin source, import, dependency, folder and the config; never start a plugin.

    The config is read as the host reads it (``config_file``, else ``KSI_CONFIG``, else
    the user's config dir), so its ``[host]`` settings apply here as they do to ``run``.
    Raises :class:`~ksi_host.errors.ConfigError` for a bad ``KSI_DISABLE_PLUGINS``.
    """
    env = os.environ if env is None else env
    config_path = config_file or KsiPaths.from_env(env).config_file
    config, sections, problems = check_config(config_file, env)
    disabled: Sequence[str] = ()
    service_choices: Mapping[str, str] = {}
    if config is not None:
        paths = (*paths, *config.host.plugin_paths)
        disabled = config.host.disabled
        service_choices = config.host.services
    off = disabled_names(disabled, env)
    candidates = discover(paths=paths, env=env, disabled=disabled)
    results = import_isolated(candidates, disabled=off, sections=sections, timeout=timeout)
    outcomes = [outcome(c, result) for c, result in zip(candidates, results, strict=True)]
    specs = [o.spec for o in outcomes if o.spec is not None]
    plan = resolve(
        specs,
        excluded=[o.exclusion for o in outcomes if o.exclusion is not None],
        service_choices=service_choices,
    )
    fixes = Fixes(plan, outcomes, env=env, disabled=off, config_path=config_path)
    problems += [fixes.problem(exclusion) for exclusion in plan.excluded]
    for found in outcomes:
        problems += fixes.config_problems(found)
    problems += [fixes.warning(text) for text in (*_warnings(outcomes), *plan.warnings)]
    problems += fixes.unknown_sections(sections)
    problems += check_distributions(importlib_metadata.distributions())
    problems += check_folders(plugin_folders(paths, env), candidates)
    problems += check_nats(config, config_path)
    return _report(outcomes, plan, problems)


def _warnings(outcomes: Sequence[Outcome]) -> list[str]:
    return [warning for outcome in outcomes for warning in outcome.warnings]


def _report(outcomes: Sequence[Outcome], plan: LoadPlan, problems: list[Problem]) -> DoctorReport:
    position = {spec.origin: index for index, spec in enumerate(plan.order, start=1)}
    excluded = {exclusion.origin: exclusion for exclusion in plan.excluded}
    worst: dict[str, str] = {}
    for problem in problems:
        if problem.plugin is not None:
            old = worst.get(problem.plugin, "info")
            worst[problem.plugin] = max(old, problem.severity, key=_SEVERITY_RANK.__getitem__)
    lines = []
    for found in outcomes:
        origin = found.candidate.origin
        spec = found.spec or (found.exclusion.spec if found.exclusion else None)
        name = spec.name if spec else found.candidate.name_hint
        status = _status(excluded.get(origin), worst.get(name, "info"))
        seconds = found.seconds
        lines.append(
            PluginLine(
                name=name,
                version=spec.version if spec else origin.dist_version,
                source=str(origin),
                status=status,
                position=position.get(origin),
                import_ms=round(seconds * 1000, 1) if seconds is not None else None,
            )
        )
    errors = sum(problem.severity == "error" for problem in problems)
    summary = Summary(
        plugins=len(outcomes),
        loadable=len(plan.order),
        errors=errors,
        warnings=sum(problem.severity == "warning" for problem in problems),
        ok=errors == 0,
    )
    return DoctorReport(plugins=lines, problems=problems, summary=summary)


def _status(exclusion: Exclusion | None, worst: str) -> PluginStatus:
    if exclusion is not None and exclusion.reason.code in ("disabled", "shadowed"):
        return "disabled" if exclusion.reason.code == "disabled" else "shadowed"
    if exclusion is not None or worst == "error":
        return "error"
    return "warning" if worst == "warning" else "ok"
