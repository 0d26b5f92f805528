"""One JSON shape for every plugin verdict: ``plugins``, ``events``, ``doctor``, ``plugin:list``.

Every ``--json`` report starts with ``schema_version`` and ``command`` and lists
``plugins`` as :class:`PluginEntry` values built by :func:`plugin_entries` from the
one load plan (and, for a running host or daemon, what it knows since). Fields are
only ever added within a schema version. docs/PLUGIN_STATUS.md shows an example of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from ksi_host._plan import Exclusion, LoadPlan, PlanWarning, Reason, Status, exclusion_status
from ksi_host.errors import KsiError

__all__ = [
    "SCHEMA_VERSION",
    "Command",
    "ErrorReport",
    "Live",
    "PluginEntry",
    "ReasonReport",
    "Report",
    "WarningReport",
    "error_report",
    "plugin_entries",
    "warning_reports",
]

SCHEMA_VERSION: Final = 2
Command = Literal["plugins", "events", "doctor", "plugin:list"]


class _Frozen(BaseModel):
    """Built on first use: a daemon starts without building the report it may never send."""

    model_config = ConfigDict(frozen=True, defer_build=True)


class ReasonReport(_Frozen):
    """Why a plugin will not (or no longer does) run; ``cause`` leads to the root cause."""

    code: str
    message: str
    hint: str = ""
    cause: ReasonReport | None = None
    traceback: str | None = None
    requirement: str | None = None
    providers: list[str] = []
    cycle: list[str] = []
    hook: str | None = None
    path: str | None = None
    line: int | None = None
    key: str | None = None

    @classmethod
    def of(cls, reason: Reason) -> ReasonReport:
        """The JSON form of ``reason`` and its whole ``cause`` chain."""
        return cls(
            code=reason.code,
            message=reason.message,
            hint=reason.hint,
            cause=cls.of(reason.cause) if reason.cause else None,
            traceback=reason.traceback,
            requirement=reason.requirement,
            providers=list(reason.providers),
            cycle=list(reason.cycle),
            hook=reason.hook,
            path=reason.path,
            line=reason.line,
            key=reason.key,
        )


class WarningReport(_Frozen):
    """Something to know about plugins that still load; ``plugins`` names them."""

    code: str
    message: str
    hint: str = ""
    plugins: list[str] = []

    @classmethod
    def of(cls, warning: PlanWarning) -> WarningReport:
        return cls(
            code=warning.code,
            message=warning.message,
            hint=warning.hint,
            plugins=list(warning.plugins),
        )


class PluginEntry(_Frozen):
    """One plugin's verdict: loadable ones have a 1-based ``position``, the others a ``reason``.

    ``warnings`` lists the codes of the plan warnings that name this plugin.
    """

    name: str
    version: str | None
    source: str
    status: Status
    position: int | None = None
    requires: list[str] = []
    reason: ReasonReport | None = None
    warnings: list[str] = []
    import_ms: float | None = None
    """How long doctor's isolated import took (doctor only)."""


class ErrorReport(_Frozen):
    """Why no report could be made (a bad config file, say): what, where, and the fix."""

    code: str
    what: str
    where: str | None = None
    hint: str | None = None


class Report(_Frozen):
    """What every ``--json`` report shares."""

    schema_version: int = SCHEMA_VERSION
    command: Command
    plugins: list[PluginEntry] = []
    warnings: list[WarningReport] = []
    daemon: str | None = None
    """The socket of the running daemon whose knowledge is merged in, if one answered."""
    error: ErrorReport | None = None


Live = Mapping[str, tuple[Status, Reason | None]]
"""A host's own view: each plugin key's status and reason, for the plugins it ran."""


def error_report(command: Command, exc: KsiError) -> Report:
    """The report of a command that could not run: still JSON, with the error as data."""
    error = ErrorReport(code=exc.reference, what=exc.what, where=exc.where, hint=exc.hint)
    return Report(command=command, error=error)


def plugin_entries(plan: LoadPlan, live: Live | None = None) -> list[PluginEntry]:
    """Every plugin of ``plan`` (loadable in order, then the rest), with a host's ``live`` view."""
    noted = _warned(plan.warnings)
    entries = []
    for position, spec in enumerate(plan.order, start=1):
        status, reason = (live or {}).get(spec.key, ("loadable", None))
        entries.append(
            PluginEntry(
                name=spec.name,
                version=spec.version,
                source=str(spec.origin),
                status=status,
                position=position,
                requires=list(plan.requires.get(spec.key, ())),
                reason=ReasonReport.of(reason) if reason else None,
                warnings=noted.get(spec.name, []),
            )
        )
    entries += [_excluded(exclusion, noted) for exclusion in plan.excluded]
    return entries


def warning_reports(warnings: Iterable[PlanWarning]) -> list[WarningReport]:
    """The plan's warnings as the reports list them."""
    return [WarningReport.of(warning) for warning in warnings]


def _warned(warnings: Sequence[PlanWarning]) -> dict[str, list[str]]:
    noted: dict[str, list[str]] = {}
    for warning in warnings:
        for name in warning.plugins:
            noted.setdefault(name, []).append(warning.code)
    return noted


def _excluded(exclusion: Exclusion, noted: Mapping[str, list[str]]) -> PluginEntry:
    version = exclusion.spec.version if exclusion.spec else exclusion.origin.dist_version
    return PluginEntry(
        name=exclusion.name,
        version=version,
        source=str(exclusion.origin),
        status=exclusion_status(exclusion.reason),
        reason=ReasonReport.of(exclusion.reason),
        warnings=noted.get(exclusion.name, []),
    )
