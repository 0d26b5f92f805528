"""The systemd user unit in docs/: its ExecStart, run as systemd would, answers status and stop.

systemd itself is not available here, so the test does what the unit tells systemd to
do: it starts ExecStart (``%h`` expanded, the program being this environment's
``ksi-host``) with exactly the unit's Environment and stdout/stderr captured as journald
would, then stops it with ``ksi-host stop`` (the SIGTERM systemd would send).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "docs" / "ksi-host.service"
KSI_HOST = Path(sys.executable).with_name("ksi-host")


def _service(unit: str) -> tuple[list[str], dict[str, str]]:
    """The [Service] section's ExecStart and Environment, as systemd reads them."""
    section = None
    command: list[str] = []
    env: dict[str, str] = {}
    for raw in unit.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section != "[Service]":
            continue
        if key == "ExecStart":
            command = shlex.split(value)
        elif key == "Environment":
            name, _, setting = value.partition("=")
            env[name] = setting
    return command, env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KSI_HOST), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.slow
@pytest.mark.skipif(not KSI_HOST.exists(), reason="the ksi-host console script is not installed")
def test_the_units_execstart_runs_a_daemon_that_status_and_stop_manage(short_dir):
    command, unit_env = _service(UNIT.read_text())
    assert command[0] == "%h/.local/bin/ksi-host"
    assert command[1:] == ["run", "--log-format", "json"]
    home = short_dir
    expand = {"%h": str(home)}
    env = {
        "HOME": str(home),
        "PATH": os.defpath,
        **{name: _expand(value, expand) for name, value in unit_env.items()},
    }
    assert env["KSI_HOME"] == f"{home}/.ksi"
    journal = home / "journal.log"
    with journal.open("wb") as out:
        proc = subprocess.Popen([str(KSI_HOST), *command[1:]], stdout=out, stderr=out, env=env)
    try:
        status = _wait_running(env, proc)
        assert status["pid"] == proc.pid
        assert status["socket"] == f"{home}/.ksi/run/ksi.sock"
        stopped = _cli(env, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"ksi-host (pid {proc.pid}) stopped"
        assert proc.wait(timeout=10) == 0  # a clean exit: systemd records no failure
    finally:
        proc.kill()
        proc.wait()
    assert _cli(env, "status").returncode == 3
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    messages = [entry["message"] for entry in entries]
    assert f"ready: pid {proc.pid}, socket {home}/.ksi/run/ksi.sock" in messages
    assert any(m.startswith("received SIGTERM: stopping") for m in messages)
    assert messages[-1] == "stopped"


def _expand(value: str, specifiers: dict[str, str]) -> str:
    for specifier, replacement in specifiers.items():
        value = value.replace(specifier, replacement)
    return value


def _wait_running(env: dict[str, str], proc: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the daemon exited {proc.returncode}"
        result = _cli(env, "status", "--json")
        status: dict[str, object] = json.loads(result.stdout)
        if result.returncode == 0 and status.get("version"):
            return status
        time.sleep(0.2)
    raise AssertionError("the daemon never reported running")
