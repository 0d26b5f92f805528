"""One verdict per plugin: ``plugins``, ``events``, ``doctor`` and a daemon's ``plugin:list`` agree.

One folder holds one plugin per broken scenario; one daemon runs on it; each view
runs once (as a real subprocess, merging what the daemon knows), and one test per
scenario checks that all four give the status and reason code it should have.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import DaemonProcess, write_config

from ksi_host._stamps import SETTLE_SECONDS
from tests.dists import install_recorded, plugin_source, recorded_manifest, recording_source

pytestmark = pytest.mark.slow

EVENT = (
    "    @hookimpl\n"
    "    def ksi_handle_event(self, event_name, data, context):\n"
    "        return None\n"
)


def _hooked(body: str, *, name: str, head: str = "", capabilities: str = "") -> str:
    return (
        "from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl\n"
        f"{head}\n"
        "class P(BasePlugin):\n"
        f"{body}\n"
        f"plugin = P(PluginMetadata(name={name!r}){capabilities})\n"
    )


def _commands(name: str, answer: str) -> str:
    return _hooked(
        EVENT.replace("return None", answer),
        name=name,
        capabilities=", PluginCapabilities(commands=['dup:hello'])",
    )


FILES = {
    "imports_badly.py": "import not_installed_anywhere\n",
    "bad_meta.py": plugin_source("bad_meta", version="not a version"),
    "typo.py": _hooked(EVENT.replace("ksi_handle_event", "ksi_handle_events"), name="typo"),
    "badarg.py": _hooked(EVENT.replace("event_name, data", "name, data"), name="badarg"),
    "configured.py": _hooked(
        EVENT + "    config_model = Settings\n",
        name="configured",
        head="from pydantic import BaseModel\nclass Settings(BaseModel):\n    port: int\n",
    ),
    "needy.py": plugin_source("needy", dependencies=["storage>=1"]),
    "old.py": plugin_source("old", version="1.0"),
    "wants_new.py": plugin_source("wants_new", dependencies=["old>=2,<3"]),
    "cyc_a.py": plugin_source("cyc_a", dependencies=["cyc_b"]),
    "cyc_b.py": plugin_source("cyc_b", dependencies=["cyc_a"]),
    "unsafe.py": plugin_source("unsafe"),
    "future.py": plugin_source("future", dependencies=["ksi-host>=2"]),
    "dup_a.py": _commands("dup_a", "return {'by': 'dup_a'}"),
    "dup_b.py": _commands("dup_b", "raise RuntimeError('dup_b is broken')"),
    "boom.py": _hooked(
        "    @hookimpl\n    def ksi_startup(self):\n        raise RuntimeError('no disk')\n",
        name="boom",
    ),
    "needs_boom.py": plugin_source("needs_boom", dependencies=["boom"]),
    "after_boom.py": plugin_source("after_boom", after=["boom"]),
}

# name -> (status, reason code or the plan warning codes that name it)
SCENARIOS: dict[str, tuple[str, str | None]] = {
    "imports_badly": ("excluded", "import-error"),
    "bad_meta": ("excluded", "invalid-metadata"),
    "typo": ("excluded", "hook-mismatch"),
    "badarg": ("excluded", "hook-mismatch"),
    "configured": ("excluded", "config-invalid"),
    "needy": ("excluded", "missing-dependency"),
    "wants_new": ("excluded", "version-conflict"),
    "cyc_a": ("excluded", "cycle"),
    "unsafe": ("excluded", "untrusted"),
    "future": ("excluded", "host-version"),
    "dup_a": ("running", "duplicate-command"),
    "dup_b": ("running", "duplicate-command"),
    "boom": ("failed", "startup-failed"),
    "needs_boom": ("failed", "dependency-failed"),
    "after_boom": ("running", None),
    "drifted": ("failed", "manifest-mismatch"),
    "sleepy": ("lazy", None),
    # Installed without a manifest: plugins and events describe them from what an
    # earlier plugins run kept (ksi_host._described_cache), the daemon and doctor import.
    "kept_fine": ("running", None),
    "kept_boom": ("failed", "startup-failed"),
    "kept_typo": ("excluded", "hook-mismatch"),
    "kept_configured": ("excluded", "config-invalid"),
}

KEPT = {
    "kept_fine": recording_source("kept_fine"),
    "kept_boom": recording_source("kept_boom", failing_startup=True),
    "kept_typo": recording_source("kept_typo").replace("ksi_handle_event", "ksi_handle_events"),
    "kept_configured": "from pydantic import BaseModel\n"
    "class Settings(BaseModel):\n    port: int\n"
    + recording_source("kept_configured").replace(
        "(BasePlugin):\n", "(BasePlugin):\n    config_model = Settings\n"
    ),
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("verdicts")
    folder = root / "plugins"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    (folder / "unsafe.py").chmod(0o666)
    socket_path = root / "run" / "ksi.sock"
    extra = (
        f"socket_path = {json.dumps(str(socket_path))}\n\n"
        f"[host]\nplugin_paths = [{json.dumps(str(folder))}]\n\n"
        '[configured]\nport = "eighty"\n\n'
        '[kept_configured]\nport = "eighty"\n'
    )
    write_config(root / "ksi.toml", state=root / "state.db", extra=extra)
    # Installed plugins that ship a ksi-plugin.toml: one whose code disagrees with it
    # (planned from it, failed once imported), and a lazy one no event has activated.
    site = root / "site"
    stale = recorded_manifest("drifted", activation="startup", description="says otherwise")
    install_recorded(site, "drifted", manifest=stale)
    install_recorded(site, "sleepy", manifest=recorded_manifest("sleepy"))
    for name, source in KEPT.items():
        install_recorded(site, name, source=source)
    (root / "cwd").mkdir()
    process = DaemonProcess(root, name="verdicts")
    process.env.update(PYTHONPATH=str(site), KSI_TEST_IMPORTS=str(root / "imports.log"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _quiet_cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``ksi-host ARGS`` from a folder nothing writes to (``python -m`` puts it on sys.path)."""
    return subprocess.run(
        daemon.command(*args),
        capture_output=True,
        text=True,
        env=daemon.env,
        cwd=daemon.root / "cwd",
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def views(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    """Each view's JSON, run once: the three commands, and the daemon's own plugin:list.

    ``plugins`` ran once before, so ``plugins`` and ``events`` describe the plugins
    without a manifest from what it kept.
    """
    config = ("--config", str(daemon.config_path))
    time.sleep(SETTLE_SECONDS + 0.2)  # what the fixture installed is old enough to date
    assert _quiet_cli(daemon, "plugins", "--json", *config).returncode == 1
    found = {}
    for command in ("plugins", "events", "doctor"):
        result = _quiet_cli(daemon, command, "--json", *config)
        assert result.returncode == (0 if command == "events" else 1), result.stderr
        found[command] = json.loads(result.stdout)
    listed = daemon.send("plugin:list")
    assert listed.returncode == 0, listed.stderr
    found["plugin:list"] = json.loads(listed.stdout)
    return found


def _verdict(report: dict[str, Any], name: str) -> tuple[str, str | None]:
    [entry] = [e for e in report["plugins"] if e["name"] == name]
    if entry["reason"] is not None:
        return entry["status"], entry["reason"]["code"]
    return entry["status"], ",".join(entry["warnings"]) or None


def test_plugins_and_events_described_what_was_kept_without_importing_it(
    daemon: DaemonProcess, views: dict[str, dict[str, Any]]
) -> None:
    imported = (daemon.root / "imports.log").read_text().split()
    # the daemon, the plugins run that kept it, doctor's worker: not plugins, not events
    assert imported.count("kept_fine") == 3
    assert imported.count("kept_typo") == 5  # a failure is never kept: every view imports it
    assert "kept_fine" in {e["plugin"] for e in views["events"]["events"]}


def test_every_view_shares_the_schema(views: dict[str, dict[str, Any]]) -> None:
    for command, report in views.items():
        assert report["schema_version"] == 2
        assert report["command"] == command
    for command in ("plugins", "events", "doctor"):
        assert views[command]["daemon"] is not None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_view_gives_the_same_verdict(views: dict[str, dict[str, Any]], name: str) -> None:
    verdicts = {command: _verdict(report, name) for command, report in views.items()}
    assert verdicts == dict.fromkeys(views, SCENARIOS[name]), verdicts


def _graph_verdicts(dot: str) -> dict[str, tuple[str, str | None]]:
    """Each plugin's status word and reason code, read off ``--graph --format dot``'s labels."""
    labels = re.finditer(r'^  n\d+ \[label="(\S+)[^"]*?\\n\[([a-z-]+)\](?: ([a-z-]+))?"', dot, re.M)
    return {label[1]: (label[2], label[3]) for label in labels}


def test_the_graph_gives_every_plugin_the_verdict_plugins_json_gives(
    daemon: DaemonProcess, views: dict[str, dict[str, Any]]
) -> None:
    config = ("--config", str(daemon.config_path))
    dot = daemon.cli("plugins", "--graph", "--format", "dot", *config)
    tree = daemon.cli("plugins", "--graph", *config)
    listed = views["plugins"]["plugins"]
    assert _graph_verdicts(dot.stdout) == {
        entry["name"]: (entry["status"], entry["reason"] and entry["reason"]["code"])
        for entry in listed
    }
    assert len(listed) > len(SCENARIOS)
    assert (dot.returncode, tree.returncode) == (1, 1)  # as plugins' (see the views fixture)
    lines = tree.stdout.splitlines()
    assert f"(merged with what the daemon on {daemon.socket_path} knows)" in lines[0]
    assert "not loading or running:" in lines
    assert "  boom  [failed]  (in the load order above)" in lines
    assert "    startup-failed: plugin 'boom' raised RuntimeError in ksi_startup: no disk" in lines
    assert "  typo  [excluded]" in lines
    why = daemon.cli("plugins", "--graph", "--why", "needs_boom", *config).stdout.splitlines()
    assert why[0].startswith("needs_boom  [failed]  loads ")
    assert why[1].startswith("  dependency-failed: ")


def test_doctor_has_a_problem_for_each_verdict_the_daemon_adds(
    views: dict[str, dict[str, Any]],
) -> None:
    problems = {(p["plugin"], p["code"]) for p in views["doctor"]["problems"]}
    assert ("boom", "startup-failed") in problems
    assert ("needs_boom", "dependency-failed") in problems
    assert ("drifted", "manifest-mismatch") in problems
    summary = views["doctor"]["summary"]
    assert {"boom", "needs_boom", "typo", "drifted"} <= set(summary["without"])
    assert "sleepy" not in summary["without"]


def test_events_lists_only_what_runs_and_both_claimants_of_a_duplicate(
    views: dict[str, dict[str, Any]],
) -> None:
    handlers = {(e["event"], e["plugin"]) for e in views["events"]["events"]}
    assert {("dup:hello", "dup_a"), ("dup:hello", "dup_b")} <= handlers
    warning = next(w for w in views["plugins"]["warnings"] if w["code"] == "duplicate-command")
    assert warning["plugins"] == ["dup_a", "dup_b"]
    assert '[host.commands] "dup:hello" = "dup_a"' in warning["hint"]


def test_both_claimants_answer_and_send_exits_1_when_one_answer_is_an_error(
    daemon: DaemonProcess,
) -> None:
    both = daemon.send("dup:hello")
    reply = json.loads(both.stdout)
    assert reply["status"] == "multiple"
    assert [r["plugin"] for r in reply["results"]] == ["dup_a", "dup_b"] or [
        r["plugin"] for r in reply["results"]
    ] == ["dup_b", "dup_a"]
    assert both.returncode == 1


def test_a_plugin_installed_after_the_daemon_started_is_not_running(
    daemon: DaemonProcess, views: dict[str, dict[str, Any]]
) -> None:
    late = daemon.root / "home" / ".ksi" / "plugins" / "late.py"
    late.parent.mkdir(parents=True, exist_ok=True)
    late.write_text(plugin_source("late"))
    try:
        config = ("--config", str(daemon.config_path))
        plugins = daemon.cli("plugins", "--json", *config)
        doctor = daemon.cli("doctor", "--json", *config, timeout=120)
        text = daemon.cli("plugins", *config)
    finally:
        late.unlink()
    for result in (plugins, doctor):
        [entry] = [e for e in json.loads(result.stdout)["plugins"] if e["name"] == "late"]
        assert (entry["status"], entry["reason"]["code"]) == ("not-running", "not-running")
        assert "ksi-host reload" in entry["reason"]["hint"]
    assert "late" not in {e["name"] for e in views["plugin:list"]["plugins"]}
    assert "late  [not-running]" in text.stdout
    fix = next(p for p in json.loads(doctor.stdout)["problems"] if p["plugin"] == "late")
    assert fix["fix"] == "ksi-host reload"


def test_health_is_degraded_naming_the_failed_plugins(daemon: DaemonProcess) -> None:
    health = json.loads(daemon.send("system:health").stdout)
    assert health["status"] == "degraded"
    assert health["failed"] == ["boom", "drifted", "kept_boom", "needs_boom"]


def test_text_views_use_the_same_words(daemon: DaemonProcess) -> None:
    config = ("--config", str(daemon.config_path))
    plugins = daemon.cli("plugins", *config).stdout
    assert "boom  [failed]  (in the load order above)" in plugins
    assert "startup-failed: plugin 'boom' raised RuntimeError in ksi_startup: no disk" in plugins
    assert "typo  [excluded]" in plugins
    assert "(merged with what the daemon on " in plugins
