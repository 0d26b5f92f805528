"""Merging what a running daemon knows into the plan's verdicts."""

from __future__ import annotations

import socket
from pathlib import Path

from ksi_host._daemon_view import ask_daemon, merge_daemon
from ksi_host._schema import PluginEntry, ReasonReport

SOCKET = Path("/run/ksi.sock")


def _entry(
    name: str, status: str, code: str | None = None, position: int | None = 1
) -> PluginEntry:
    reason = ReasonReport(code=code, message=f"{name} {code}") if code else None
    return PluginEntry(
        name=name,
        version="1.0",
        source=f"path {name}.py",
        status=status,  # type: ignore[arg-type]
        position=position,
        reason=reason,
    )


def test_the_daemon_knows_better_about_what_it_started() -> None:
    plan = [
        _entry("runs", "loadable"),
        _entry("broke", "loadable"),
        _entry("new", "loadable"),
        _entry("fixed", "loadable"),
        _entry("sleeps", "loadable"),
        _entry("bad", "excluded", "import-error", None),
    ]
    daemon = [
        _entry("runs", "running"),
        _entry("broke", "failed", "startup-failed"),
        _entry("fixed", "excluded", "import-error", None),
        _entry("bad", "excluded", "import-error", None),
        _entry("sleeps", "lazy"),
        _entry("gone", "running"),
    ]
    merged = {e.name: e for e in merge_daemon(plan, daemon, SOCKET)}
    verdicts = {name: (e.status, e.reason and e.reason.code) for name, e in merged.items()}
    assert verdicts == {
        "runs": ("running", None),
        "broke": ("failed", "startup-failed"),
        "new": ("not-running", "not-running"),
        "fixed": ("not-running", "not-running"),
        "bad": ("excluded", "import-error"),
        "sleeps": ("lazy", None),  # runs there, imported on its first event
        "gone": ("running", None),
    }
    assert "ksi-host reload" in (merged["new"].reason.hint if merged["new"].reason else "")
    assert str(SOCKET) in (merged["new"].reason.message if merged["new"].reason else "")


def test_no_daemon_or_not_a_ksi_daemon_leaves_the_plan_alone(tmp_path: Path) -> None:
    assert ask_daemon(tmp_path / "missing.sock") is None
    path = tmp_path / "other.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert ask_daemon(path, timeout=0.5) is None  # bound, not listening: refused
