"""What a running daemon knows that a plan cannot, merged into the plan's verdicts.

A plan is built from what is installed now; a daemon started earlier runs what was
installed then, and only it knows which plugins failed in ``ksi_plugin_context`` or
``ksi_startup``. ``plugins``, ``events`` and ``doctor`` ask the daemon on the
configured socket (``plugin:list``, through the ordinary client) and show its
status where it has one: ``failed`` with the startup reason, ``running``, ``lazy``
(not imported until its first event), and
``not-running`` for a plugin the plan would load but the daemon does not run.
No daemon (or one that does not answer in time) leaves the plan as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from packaging.utils import canonicalize_name
from pydantic import ConfigDict, TypeAdapter, ValidationError

from ksi_host._plan import LoadPlan
from ksi_host._schema import PluginEntry, ReasonReport, plugin_entries
from ksi_host.errors import KsiError

__all__ = ["ASK_TIMEOUT", "ask_daemon", "merge_daemon", "verdicts"]

ASK_TIMEOUT: Final = 3.0
"""Seconds a view waits for the daemon before showing the plan alone."""
_RUNTIME: Final = frozenset({"pending", "lazy", "running", "failed", "stopped"})
_ENTRIES: Final = TypeAdapter(list[PluginEntry], config=ConfigDict(defer_build=True))


def verdicts(plan: LoadPlan, socket_path: Path | None) -> tuple[list[PluginEntry], str | None]:
    """Every plugin's verdict, merged with the daemon's on ``socket_path`` if one answers."""
    entries = plugin_entries(plan)
    daemon = ask_daemon(socket_path) if socket_path is not None else None
    if daemon is None or socket_path is None:
        return entries, None
    return merge_daemon(entries, daemon, socket_path), str(socket_path)


def ask_daemon(socket_path: Path, timeout: float = ASK_TIMEOUT) -> list[PluginEntry] | None:
    """The daemon's ``plugin:list`` entries, or None when no daemon answers as ksi-host does."""
    if not socket_path.exists():
        return None
    from ksi_host._client import request_sync  # the socket client, only when a daemon may answer

    try:
        answer = request_sync(socket_path, "plugin:list", {}, timeout)
        return _ENTRIES.validate_python(answer.get("plugins"))
    except (KsiError, ValidationError):
        return None


def merge_daemon(
    entries: Sequence[PluginEntry], daemon: Sequence[PluginEntry], socket_path: Path
) -> list[PluginEntry]:
    """The plan's ``entries`` with the running daemon's status wherever it knows better."""
    known = {(_key(entry.name), entry.source): entry for entry in daemon}
    merged = []
    for entry in entries:
        live = known.pop((_key(entry.name), entry.source), None)
        if live is not None and live.status in _RUNTIME:
            entry = entry.model_copy(update={"status": live.status, "reason": live.reason})
        elif entry.status == "loadable":
            entry = entry.model_copy(
                update={"status": "not-running", "reason": _not_running(entry, socket_path)}
            )
        merged.append(entry)
    merged += [entry for entry in daemon if (_key(entry.name), entry.source) in known]
    return merged


def _key(name: str) -> str:
    return str(canonicalize_name(name))


def _not_running(entry: PluginEntry, socket_path: Path) -> ReasonReport:
    return ReasonReport(
        code="not-running",
        message=f"{entry.name} can load, but the daemon on {socket_path} does not run it: "
        "it was installed (or fixed) after the daemon started",
        hint="run `ksi-host reload` to load it into the running daemon, or restart `ksi-host run`",
    )
