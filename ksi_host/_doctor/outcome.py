"""The worker's findings turned back into the host's own stage values, to hand to ``resolve``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ksi_host._doctor.isolate import Failure
from ksi_host._doctor.worker import reason_from_wire
from ksi_host._plan import Candidate, Exclusion, PlanWarning, PluginSpec, Reason
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__all__ = ["Outcome", "outcome"]


@dataclass(frozen=True)
class Outcome:
    """What the worker found for one candidate, rebuilt as the host's own stage values.

    Neither ``spec`` nor ``exclusion`` for a helper module in a plugin folder.
    """

    candidate: Candidate
    spec: PluginSpec | None = None
    exclusion: Exclusion | None = None
    seconds: float | None = None
    source_file: str | None = None
    warnings: tuple[PlanWarning, ...] = ()
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
            frames=result.frames,
        )
        return Outcome(candidate, exclusion=Exclusion(name, origin, reason), failure=result)
    warnings = tuple(
        PlanWarning(w["code"], w["message"], w["hint"], tuple(w["plugins"]))
        for w in result.get("warnings", ())
    )
    common: dict[str, Any] = {"seconds": result["seconds"], "warnings": warnings}
    if "excluded" in result:
        data = result["excluded"]
        spec = _spec(data["spec"], candidate) if data["spec"] else None
        exclusion = Exclusion(data["name"], origin, reason_from_wire(data["reason"]), spec)
        return Outcome(candidate, exclusion=exclusion, source_file=data["source_file"], **common)
    if result.get("helper"):
        return Outcome(candidate, **common)
    spec = _spec(result["spec"], candidate)
    return Outcome(candidate, spec=spec, source_file=result["source_file"], **common)


def _spec(data: Mapping[str, Any], candidate: Candidate) -> PluginSpec:
    """Re-validate what the worker sent: the parent trusts the models, not the wire."""
    return PluginSpec(
        plugin=None,
        metadata=PluginMetadata(**data["metadata"]),
        capabilities=PluginCapabilities(**data["capabilities"]),
        origin=candidate.origin,
    )
