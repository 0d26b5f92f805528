"""The isolated side of ``doctor``: one process imports the candidates one by one and reports each.

Started by :mod:`ksi_host._doctor.isolate` with the working directory off
``sys.path`` (doctor checks what is installed, not the current directory). It reads
one JSON object from stdin (``candidates``: ``[[index, candidate], ...]``,
``disabled``, ``sections``, ``trust_paths``, ``sys_path``: folders put first on
``sys.path``) and writes
one JSON line per event to the stdout it was started with::

    {"start": i, "stderr_at": offset}   about to import candidate i
    {"done": i, "seconds": ..., ...}     what describing candidate i found
    {"end": true}                        every candidate was described

Plugin code that prints goes to stderr (fd 1 is pointed there), so it cannot
corrupt the protocol. A candidate that crashes or hangs the interpreter leaves a
``start`` without its ``done``: the parent blames it and starts a fresh worker.
Each candidate goes through the host's own ``describe`` and ``vet``, so the verdict
is the one ``run`` reaches; nothing here calls a plugin hook.
"""

from __future__ import annotations

import faulthandler
import inspect
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import IO, Any, Final, get_args

from ksi_host._describe import Described, describe, import_described
from ksi_host._plan import Candidate, Exclusion, Origin, PluginSpec, Reason, ReasonCode
from ksi_host._trust import TrustPolicy
from ksi_host._vet import vet
from ksi_host.plugin_manager import hook_names

__all__ = [
    "candidate_from_wire",
    "candidate_to_wire",
    "main",
    "reason_from_wire",
    "reason_to_wire",
]

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


def reason_to_wire(reason: Reason) -> dict[str, Any]:
    """A describe or vet reason (it has no cause) as JSON-ready data, traceback shortened."""
    data = asdict(reason)
    data.pop("cause")
    if reason.traceback:
        data["traceback"] = "\n".join(reason.traceback.rstrip().splitlines()[-TRACEBACK_LINES:])
    return data


def reason_from_wire(data: Mapping[str, Any]) -> Reason:
    """The reason :func:`reason_to_wire` wrote; an unknown code is the worker's bug."""
    code = data["code"]
    if code not in get_args(ReasonCode):
        raise ValueError(f"the doctor worker sent an unknown reason code {code!r}")
    fields = {
        **data,
        "providers": tuple(data["providers"]),
        "cycle": tuple(data["cycle"]),
        "differences": tuple(data.get("differences", ())),
        "frames": tuple((file, line) for file, line in data["frames"]),
    }
    return Reason(**fields)


def main() -> None:
    """Describe and vet every candidate sent on stdin, reporting each on the original stdout."""
    request = json.load(sys.stdin)
    sys.path[:0] = request.get("sys_path", [])
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    faulthandler.enable()
    disabled: dict[str, str] = request.get("disabled", {})
    sections: dict[str, Any] = request.get("sections", {})
    trust = TrustPolicy.of(request.get("trust_paths", ()))
    for index, wire in request["candidates"]:
        candidate = candidate_from_wire(wire)
        _send(channel, {"start": index, "stderr_at": _stderr_offset()})
        started = time.perf_counter()
        described = _imported(describe([candidate], disabled=disabled, trust=trust))
        described = vet(described, sections)
        seconds = time.perf_counter() - started
        result: dict[str, Any] = {"done": index, "seconds": seconds}
        result["warnings"] = [asdict(warning) for warning in described.warnings]
        if described.specs:
            spec = described.specs[0]
            result.update(
                spec=_spec_data(spec),
                source_file=_source_file(spec.plugin),
                hooks=list(hook_names(spec.plugin)),  # an isolated plugin's proxy implements these
            )
        elif not described.excluded:
            result["helper"] = True
        else:
            exclusion = described.excluded[0]
            result["excluded"] = {
                "name": exclusion.name,
                "reason": reason_to_wire(exclusion.reason),
                "spec": _spec_data(exclusion.spec) if exclusion.spec is not None else None,
                "source_file": _source_file(exclusion.spec.plugin) if exclusion.spec else None,
            }
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


def _spec_data(spec: PluginSpec) -> dict[str, Any]:
    return {
        "metadata": spec.metadata.model_dump(mode="json"),
        "capabilities": spec.capabilities.model_dump(mode="json"),
    }


def _imported(described: Described) -> Described:
    """A manifest's plugin imported and compared with its manifest, so its code is vetted."""
    if not described.specs or described.specs[0].imported:
        return described
    spec = described.specs[0]
    imported = import_described(spec)
    if isinstance(imported, Reason):
        return replace(described, specs=(), excluded=(_failed(spec, imported),))
    return replace(described, specs=(imported,))


def _source_file(plugin: object) -> str | None:
    try:
        return inspect.getsourcefile(type(plugin))
    except (TypeError, OSError):
        return None


if __name__ == "__main__":
    main()
