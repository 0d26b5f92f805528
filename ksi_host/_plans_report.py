"""The load plan as ``ksi-host plugins`` shows it: pydantic models for ``--json``, and text."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ksi_host._plan import Exclusion, LoadPlan, Reason

__all__ = ["PlanReport", "PluginEntry", "ReasonReport", "plan_report", "render_text"]

Status = Literal["loadable", "excluded", "disabled", "shadowed"]


class ReasonReport(BaseModel):
    """Why a plugin will not load; ``cause`` leads to the root cause."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    hint: str = ""
    cause: ReasonReport | None = None
    traceback: str | None = None
    requirement: str | None = None
    providers: list[str] = []
    cycle: list[str] = []

    @classmethod
    def of(cls, reason: Reason) -> ReasonReport:
        """The JSON form of ``reason`` and its whole ``cause`` chain."""
        cause = cls.of(reason.cause) if reason.cause else None
        return cls(
            code=reason.code,
            message=reason.message,
            hint=reason.hint,
            cause=cause,
            traceback=reason.traceback,
            requirement=reason.requirement,
            providers=list(reason.providers),
            cycle=list(reason.cycle),
        )


class PluginEntry(BaseModel):
    """One plugin: loadable ones have a 1-based ``position``, the others a ``reason``."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str | None
    source: str
    status: Status
    position: int | None = None
    requires: list[str] = []
    reason: ReasonReport | None = None


class PlanReport(BaseModel):
    """Every plugin found: loadable ones in load order, then the ones that will not load."""

    model_config = ConfigDict(frozen=True)

    plugins: list[PluginEntry]
    warnings: list[str] = []

    @property
    def ok(self) -> bool:
        """True when nothing is excluded except by the user's choice or by precedence."""
        return all(entry.status != "excluded" for entry in self.plugins)


def plan_report(plan: LoadPlan) -> PlanReport:
    """The plan as ``ksi-host plugins`` reports it: the same data for text and ``--json``."""
    loadable = [
        PluginEntry(
            name=spec.name,
            version=spec.version,
            source=str(spec.origin),
            status="loadable",
            position=position,
            requires=list(plan.requires.get(spec.key, ())),
        )
        for position, spec in enumerate(plan.order, start=1)
    ]
    return PlanReport(
        plugins=[*loadable, *(_excluded_entry(e) for e in plan.excluded)],
        warnings=list(plan.warnings),
    )


def _excluded_entry(exclusion: Exclusion) -> PluginEntry:
    code = exclusion.reason.code
    status: Status = code if code in ("disabled", "shadowed") else "excluded"
    version = exclusion.spec.version if exclusion.spec else exclusion.origin.dist_version
    return PluginEntry(
        name=exclusion.name,
        version=version,
        source=str(exclusion.origin),
        status=status,
        reason=ReasonReport.of(exclusion.reason),
    )


def render_text(report: PlanReport, *, tracebacks: bool = False) -> str:
    """Human-readable plan: the load order, then each plugin that will not load and why."""
    loadable = [entry for entry in report.plugins if entry.position is not None]
    others = [entry for entry in report.plugins if entry.position is None]
    lines = [f"{len(loadable)} plugin(s) will load, {len(others)} will not"]
    if loadable:
        lines.append("load order:")
        lines += [f"  {e.position}. {_title(e)}  [{e.status}]  from {e.source}" for e in loadable]
    if others:
        lines.append("not loading:")
    for entry in others:
        lines.append(f"  {_title(entry)}  [{entry.status}]  from {entry.source}")
        reason = entry.reason
        prefix = ""
        while reason is not None:
            lines.append(f"    {prefix}{reason.code}: {reason.message}")
            if reason.hint:
                lines.append(f"      hint: {reason.hint}")
            if tracebacks and reason.traceback:
                lines += [f"      | {line}" for line in reason.traceback.rstrip().splitlines()]
            reason, prefix = reason.cause, "caused by "
    if report.warnings:
        lines.append("warnings:")
        lines += [f"  - {warning}" for warning in report.warnings]
    return "\n".join(lines)


def _title(entry: PluginEntry) -> str:
    return f"{entry.name} {entry.version}" if entry.version else entry.name
