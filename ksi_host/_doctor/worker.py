"""The isolated side of ``doctor``: one process imports the candidates one by one and reports each.

Run as ``python -m ksi_host._doctor.worker``. It reads one JSON object from stdin
(``candidates``: ``[[index, candidate], ...]``, ``disabled``, ``sections``) and writes
one JSON line per event to the stdout it was started with::

    {"start": i, "stderr_at": offset}   about to import candidate i
    {"done": i, "seconds": ..., ...}     what describing candidate i found
    {"end": true}                        every candidate was described

Plugin code that prints goes to stderr (fd 1 is pointed there), so it cannot
corrupt the protocol. A candidate that crashes or hangs the interpreter leaves a
``start`` without its ``done``: the parent blames it and starts a fresh worker.
Nothing here calls a plugin hook: registering on a throwaway manager only checks
the hooks against the specs.
"""

from __future__ import annotations

import faulthandler
import inspect
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Final

from ksi_host._config import check_plugin_config
from ksi_host._describe import describe, import_described
from ksi_host._plan import Candidate, Exclusion, Origin, PluginSpec, Reason
from ksi_host.errors import PluginRegistrationError
from ksi_host.plugin_manager import KsiPluggyManager

__all__ = ["candidate_from_wire", "candidate_to_wire", "main"]

TRACEBACK_LINES: Final = 25
"""How much of a traceback the report keeps: the end, where the error is."""


def candidate_to_wire(candidate: Candidate) -> dict[str, Any]:
    """A candidate as JSON-ready data for the worker's stdin."""
    data = asdict(candidate)
    data["file"] = str(candidate.file) if candidate.file is not None else None
    data["manifest"] = str(candidate.manifest) if candidate.manifest is not None else None
    return data


def candidate_from_wire(data: Mapping[str, Any]) -> Candidate:
    """The candidate :func:`candidate_to_wire` wrote."""
    fields = dict(data)
    fields["origin"] = Origin(**fields["origin"])
    fields["file"] = Path(fields["file"]) if fields["file"] is not None else None
    fields["manifest"] = Path(fields["manifest"]) if fields["manifest"] is not None else None
    return Candidate(**fields)


def main() -> None:
    """Describe every candidate sent on stdin, reporting each on the original stdout."""
    request = json.load(sys.stdin)
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    faulthandler.enable()
    disabled: dict[str, str] = request.get("disabled", {})
    sections: dict[str, Any] = request.get("sections", {})
    for index, wire in request["candidates"]:
        candidate = candidate_from_wire(wire)
        _send(channel, {"start": index, "stderr_at": _stderr_offset()})
        started = time.perf_counter()
        described = describe([candidate], disabled=disabled)
        found: PluginSpec | Exclusion = (
            described.specs[0] if described.specs else described.excluded[0]
        )
        if isinstance(found, PluginSpec) and not found.imported:
            imported = import_described(found)  # the manifest's plugin: import and compare
            found = imported if isinstance(imported, PluginSpec) else _failed(found, imported)
        seconds = time.perf_counter() - started
        result: dict[str, Any] = {"done": index, "seconds": seconds}
        result["warnings"] = list(described.warnings)
        if isinstance(found, PluginSpec):
            result.update(_spec_result(found, sections))
        else:
            result["excluded"] = _exclusion_result(found)
        _send(channel, result)
    _send(channel, {"end": True})
    sys.stderr.flush()
    os._exit(0)  # a plugin's leftover non-daemon thread must not keep the worker alive


def _failed(spec: PluginSpec, reason: Reason) -> Exclusion:
    return Exclusion(spec.name, spec.origin, reason, spec)


def _send(channel: IO[str], event: Mapping[str, Any]) -> None:
    channel.write(json.dumps(event, default=str) + "\n")
    channel.flush()


def _stderr_offset() -> int | None:
    """Where this candidate's stderr starts, so a crash report shows only its own output."""
    sys.stderr.flush()
    try:
        return os.lseek(2, 0, os.SEEK_CUR)
    except OSError:
        return None


def _spec_result(spec: PluginSpec, sections: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "spec": _spec_data(spec),
        "source_file": _source_file(spec.plugin),
        "hook_error": None,
        "config_errors": check_plugin_config(spec.plugin, sections.get(spec.key)),
    }
    try:
        KsiPluggyManager().register(spec.plugin)
    except PluginRegistrationError as exc:
        result["hook_error"] = {
            "hook": exc.hook,
            "what": exc.what,
            "hint": exc.hint,
            "suggestion": exc.suggestion,
            "line": _hook_line(spec.plugin, exc.hook),
        }
    return result


def _spec_data(spec: PluginSpec) -> dict[str, Any]:
    return {
        "metadata": spec.metadata.model_dump(mode="json"),
        "capabilities": spec.capabilities.model_dump(mode="json"),
    }


def _exclusion_result(exclusion: Exclusion) -> dict[str, Any]:
    reason = exclusion.reason
    traceback = reason.traceback
    if traceback:
        traceback = "\n".join(traceback.rstrip().splitlines()[-TRACEBACK_LINES:])
    return {
        "name": exclusion.name,
        "code": reason.code,
        "message": reason.message,
        "hint": reason.hint,
        "traceback": traceback,
        "differences": list(reason.differences),
        "spec": _spec_data(exclusion.spec) if exclusion.spec is not None else None,
    }


def _source_file(plugin: object) -> str | None:
    try:
        return inspect.getsourcefile(type(plugin))
    except (TypeError, OSError):
        return None


def _hook_line(plugin: object, hook: str | None) -> int | None:
    """The line that defines the offending hook method, for the fix."""
    method = getattr(type(plugin), hook, None) if hook else None
    try:
        return inspect.getsourcelines(method)[1] if method is not None else None
    except (TypeError, OSError):
        return None


if __name__ == "__main__":
    main()
