"""What ``ksi-host doctor`` found: pydantic models for ``--json`` and the text a person reads.

The JSON shape is the one every ``--json`` report shares (:mod:`ksi_host._schema`):
``plugins`` holds each plugin's verdict exactly as ``plugins --json`` gives it, and
doctor adds ``problems`` and a ``summary``. Every problem carries a stable
kebab-case ``code``, a ``severity``, and a ``fix`` that can be pasted into a shell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import click
from pydantic import BaseModel, ConfigDict

from ksi_host._schema import PluginEntry, Report

__all__ = ["DoctorReport", "Problem", "Severity", "Summary", "render_text"]

Severity = Literal["error", "warning", "info"]

_MARKS: Final[dict[str, tuple[str, str]]] = {
    "ok": ("✓", "green"),
    "warning": ("!", "yellow"),
    "error": ("✗", "red"),
    "off": ("-", "bright_black"),
    "info": ("i", "bright_black"),
}
_SHOWN_TRACEBACK_LINES: Final = 4


class Problem(BaseModel):
    """One thing wrong, where it is, and the command that fixes it."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    plugin: str | None = None
    what: str
    where: str
    fix: str
    note: str = ""
    caused_by: str | None = None
    """For ``dependency-excluded``: the plugin whose problem this one follows from."""
    traceback: str | None = None


class Summary(BaseModel):
    """Counts, and whether everything found can load."""

    model_config = ConfigDict(frozen=True)

    plugins: int
    loadable: int
    errors: int
    warnings: int
    ok: bool
    without: list[str] = []
    """Plugins the host starts without: everything else runs (``run`` starts anyway)."""


class DoctorReport(Report):
    """Every plugin found and every problem, with a fix for each."""

    command: Literal["doctor"] = "doctor"
    problems: list[Problem] = []
    summary: Summary | None = None

    def exit_code(self, *, strict: bool = False) -> int:
        """1 when anything is an error (or, with ``strict``, a warning); else 0."""
        failing = {"error", "warning"} if strict else {"error"}
        return int(any(problem.severity in failing for problem in self.problems))


def render_text(
    report: DoctorReport, *, color: bool | None = None, tracebacks: bool = False
) -> str:
    """Status lines, then each problem as what / where / fix, dependents as a tree under the root.

    ``color`` None colours only a terminal without ``NO_COLOR`` (click decides).
    """

    def paint(text: str, fg: str, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color is not False else text

    lines = [paint("plugins:", "white", bold=True)]
    if report.daemon:
        lines[0] += f" (merged with what the daemon on {report.daemon} knows)"
    for entry in report.plugins:
        mark, fg = _MARKS[_health(report, entry)]
        title = f"{entry.name} {entry.version}" if entry.version else entry.name
        took = f"  [{entry.import_ms:.0f} ms]" if entry.import_ms is not None else ""
        lines.append(f"  {paint(mark, fg)} {title}  ({entry.status})  from {entry.source}{took}")
    if not report.plugins:
        lines.append("  (none found)")
    tops = [p for p in report.problems if p.caused_by is None or not _has_root(report, p)]
    if tops:
        lines.append(paint("problems:", "white", bold=True))
    for problem in tops:
        lines += _problem_lines(problem, paint, tracebacks)
        lines += _tree(report, problem.plugin, "      ", set())
    s = report.summary
    if s is None:
        return "\n".join(lines)
    if s.ok:
        verdict = "everything can load"
    elif s.without:
        verdict = f"the host will start without {', '.join(s.without)}"
    else:
        verdict = "the host will not start as configured"
    lines.append(
        f"{s.plugins} plugin(s), {s.loadable} will load; "
        f"{s.errors} error(s), {s.warnings} warning(s): {verdict}"
    )
    return "\n".join(lines)


def _health(report: DoctorReport, entry: PluginEntry) -> str:
    """The mark of a plugin line: off by choice, else the worst problem that names it."""
    if entry.status in ("disabled", "shadowed"):
        return "off" if entry.status == "disabled" else "warning"
    if entry.status in ("excluded", "failed", "not-running"):
        return "error"
    severities = {p.severity for p in report.problems if p.plugin == entry.name}
    flagged = entry.warnings or {"warning", "error"} & severities
    return "warning" if flagged else "ok"


def _problem_lines(problem: Problem, paint: Callable[..., str], tracebacks: bool) -> list[str]:
    mark, fg = _MARKS[problem.severity]
    who = f"{problem.plugin}: " if problem.plugin else ""
    first, *more = problem.what.splitlines() or [""]
    lines = [f"  {paint(mark, fg)} {who}{first}  [{problem.code}]"]
    lines += [f"      {line.strip()}" for line in more]
    lines.append(f"      where: {problem.where}")
    if problem.fix:
        lines.append(f"      fix:   {paint(problem.fix, 'cyan')}")
    if problem.note:
        lines.append(f"             {problem.note}")
    if problem.traceback:
        shown = problem.traceback.splitlines()
        if not tracebacks:  # a faulthandler dump lists the innermost frame first
            if "most recent call first" in problem.traceback:
                shown = shown[: _SHOWN_TRACEBACK_LINES + 2]
            else:
                shown = shown[-_SHOWN_TRACEBACK_LINES:]
        lines += [f"      | {line}" for line in shown]
    return lines


def _has_root(report: DoctorReport, problem: Problem) -> bool:
    return any(p.plugin == problem.caused_by and p is not problem for p in report.problems)


def _tree(report: DoctorReport, plugin: str | None, indent: str, seen: set[str]) -> list[str]:
    """The plugins that will not load because ``plugin`` does not, each under what it needs."""
    children = [p for p in report.problems if plugin and p.caused_by == plugin]
    if not children:
        return []
    lines = [f"{indent}also not loading because of this:"] if not seen else []
    for child in children:
        if child.plugin is None or child.plugin in seen:
            continue
        seen.add(child.plugin)
        lines.append(f"{indent}  └─ {child.plugin} (needs {plugin})")
        lines += _tree(report, child.plugin, indent + "     ", seen)
    return lines
