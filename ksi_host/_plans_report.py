"""The load plan as ``ksi-host plugins`` shows it: the shared report for ``--json``, and text."""

from __future__ import annotations

from typing import Literal

from ksi_host._plan import FAULTS, LoadPlan
from ksi_host._schema import PluginEntry, Report, plugin_entries, warning_reports

__all__ = ["PlanReport", "plan_report", "render_text"]


class PlanReport(Report):
    """Every plugin found: loadable ones in load order, then the ones that will not load."""

    command: Literal["plugins"] = "plugins"

    @property
    def ok(self) -> bool:
        """True when every plugin runs or will, except by the user's choice or by precedence."""
        return self.error is None and all(entry.status not in FAULTS for entry in self.plugins)


def plan_report(
    plan: LoadPlan, entries: list[PluginEntry] | None = None, daemon: str | None = None
) -> PlanReport:
    """The plan as ``ksi-host plugins`` reports it: the same data for text and ``--json``.

    ``entries`` are the verdicts to show when not the plan's own (merged with a
    daemon's, whose socket is ``daemon``).
    """
    return PlanReport(
        plugins=plugin_entries(plan) if entries is None else entries,
        warnings=warning_reports(plan.warnings),
        daemon=daemon,
    )


def render_text(report: PlanReport, *, tracebacks: bool = False) -> str:
    """Human-readable plan: the load order, then each plugin that will not load and why."""
    loadable = [entry for entry in report.plugins if entry.position is not None]
    others = [entry for entry in report.plugins if entry.position is None]
    lines = [f"{len(loadable)} plugin(s) will load, {len(others)} will not"]
    if report.daemon:
        lines[0] += f" (merged with what the daemon on {report.daemon} knows)"
    if loadable:
        lines.append("load order:")
        lines += [f"  {e.position}. {_title(e)}  [{e.status}]  from {e.source}" for e in loadable]
    troubled = [entry for entry in report.plugins if entry.reason is not None]
    if troubled:
        lines.append("not loading:" if len(troubled) == len(others) else "not loading or running:")
    for entry in troubled:
        if entry.position is None:
            lines.append(f"  {_title(entry)}  [{entry.status}]  from {entry.source}")
        else:
            lines.append(f"  {_title(entry)}  [{entry.status}]  (in the load order above)")
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
        for warning in report.warnings:
            lines.append(f"  - {warning.message}  [{warning.code}]")
            if warning.hint:
                lines.append(f"    hint: {warning.hint}")
    return "\n".join(lines)


def _title(entry: PluginEntry) -> str:
    return f"{entry.name} {entry.version}" if entry.version else entry.name
