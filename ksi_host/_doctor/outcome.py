"""The worker's findings turned back into the host's own stage values, to hand to ``resolve``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from ksi_host._doctor.isolate import Failure
from ksi_host._plan import Candidate, Exclusion, PluginSpec, Reason, ReasonCode
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__all__ = ["Outcome", "outcome"]


@dataclass(frozen=True)
class Outcome:
    """What the worker found for one candidate, rebuilt as the host's own stage values."""

    candidate: Candidate
    spec: PluginSpec | None = None
    exclusion: Exclusion | None = None
    seconds: float | None = None
    source_file: str | None = None
    hook_error: Mapping[str, Any] | None = None
    config_errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    failure: Failure | None = None


def outcome(candidate: Candidate, result: Mapping[str, Any] | Failure) -> Outcome:
    """One candidate's worker result (or failure) as a spec or an exclusion."""
    name, origin = candidate.name_hint, candidate.origin
    if isinstance(result, Failure):
        reason = Reason(
            "import-error",
            f"{name} {result.detail}",
            f"set KSI_DISABLE_PLUGINS={name} to skip it",
            traceback=result.output or None,
        )
        return Outcome(candidate, exclusion=Exclusion(name, origin, reason), failure=result)
    common: dict[str, Any] = {
        "seconds": result["seconds"],
        "warnings": tuple(result.get("warnings", ())),
    }
    if "excluded" in result:
        data = result["excluded"]
        reason = Reason(
            _code(data["code"]),
            data["message"],
            data["hint"],
            traceback=data["traceback"],
            differences=tuple(data.get("differences", ())),
        )
        spec = _spec(data["spec"], candidate) if data["spec"] else None
        return Outcome(candidate, exclusion=Exclusion(data["name"], origin, reason, spec), **common)
    spec = _spec(result["spec"], candidate)
    common.update(
        source_file=result["source_file"],
        hook_error=result["hook_error"],
        config_errors=tuple(result["config_errors"]),
    )
    if result["hook_error"]:
        error = result["hook_error"]
        reason = Reason("not-a-plugin", error["what"], error["hint"] or "")
        return Outcome(candidate, exclusion=Exclusion(spec.name, origin, reason, spec), **common)
    return Outcome(candidate, spec=spec, **common)


def _spec(data: Mapping[str, Any], candidate: Candidate) -> PluginSpec:
    """Re-validate what the worker sent: the parent trusts the models, not the wire."""
    return PluginSpec(
        plugin=None,
        metadata=PluginMetadata(**data["metadata"]),
        capabilities=PluginCapabilities(**data["capabilities"]),
        origin=candidate.origin,
    )


def _code(code: str) -> ReasonCode:
    if code not in get_args(ReasonCode):
        raise ValueError(f"the doctor worker sent an unknown reason code {code!r}")
    return code  # type: ignore[return-value]
