"""The built-in plugins in a real Host built by discovery, with a real config and SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import DAEMON_EVENTS, builtin_host, error_code, plan_of, write_config

from ksi_host._client import request_sync
from ksi_host._config import HostConfig, load_config
from ksi_host._lifecycle import Host
from ksi_host._schema import SCHEMA_VERSION
from ksi_host.errors import ConfigError, StateDatabaseError
from ksi_host.plugin_base import BasePlugin
from ksi_plugins_builtin import (
    PLUGIN_MODULES,
    health,
    history,
    metrics,
    nats_bridge,
    plugins,
    state,
)
from ksi_plugins_builtin.transport import unix_socket, websocket

MODULES = [health, state, history, plugins, metrics, nats_bridge, unix_socket, websocket]
CATALOG = Path(__file__).parents[1] / "docs" / "EVENT_CATALOG.md"


async def dispatch_all(host: Host, calls: tuple[tuple[str, dict[str, Any]], ...]) -> list[Any]:
    """Start ``host``, dispatch ``calls`` in order, stop it."""
    async with host:
        return [await host.dispatch(event, data) for event, data in calls]


def run_host(db: HostConfig, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    """Every built-in except the transport, plus the test events, in a real Host."""
    home = Path(db.plugin_sections["state"]["path"]).parent / "home"
    return asyncio.run(dispatch_all(builtin_host(db, home), calls))


@pytest.fixture
def db(tmp_path: Path) -> HostConfig:
    """A real config read from a file: the state database in ``tmp_path``."""
    config = write_config(tmp_path / "ksi.toml", state=tmp_path / "state.sqlite3")
    return load_config(config, env={"HOME": str(tmp_path / "home")})


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_builtin_module_exposes_a_plugin(module):
    assert isinstance(module.plugin, BasePlugin)


def test_the_event_catalog_lists_every_declared_command_with_its_plugin():
    text = CATALOG.read_text()
    for module in MODULES:
        for command in module.plugin.capabilities.commands:
            assert re.search(rf"`{command}`.*\|\s*{module.plugin.name}\s*\|", text), command


def test_health_reports_status_time_uptime_and_plugin_counts(db):
    [answer] = run_host(db, ("system:health", {}))
    assert answer["status"] == "healthy"
    assert datetime.fromisoformat(answer["timestamp"]).tzinfo is not None
    assert answer["uptime"] >= 0
    assert answer["plugins"] == {"total": 9, "running": 8, "disabled": 1}


def test_health_without_a_host_omits_the_counts():
    plugin = health.HealthPlugin()
    plugin.ksi_plugin_context({})
    answer = plugin.ksi_handle_event("system:health", {}, None)
    assert "plugins" not in answer
    assert plugin.ksi_handle_event("other:event", {}, None) is None


def test_state_set_get_list_delete(db):
    answers = run_host(
        db,
        ("state:set", {"key": "user:1", "value": {"name": "Ada", "tags": [1, None, True]}}),
        ("state:set", {"key": "user:2", "value": None}),
        ("state:set", {"key": "other", "value": 3.5}),
        ("state:get", {"key": "user:1"}),
        ("state:get", {"key": "missing"}),
        ("state:list", {"prefix": "user:"}),
        ("state:list", {"prefix": "user:", "limit": 1}),
        ("state:delete", {"key": "user:1"}),
        ("state:delete", {"key": "user:1"}),
        ("state:list", {}),
    )
    assert answers[0] == {"status": "set", "key": "user:1"}
    assert answers[3] == {
        "key": "user:1",
        "found": True,
        "value": {"name": "Ada", "tags": [1, None, True]},
    }
    assert answers[4] == {"key": "missing", "found": False, "value": None}
    assert [i["key"] for i in answers[5]["items"]] == ["user:1", "user:2"]
    assert answers[5]["truncated"] is False
    assert (answers[6]["count"], answers[6]["truncated"]) == (1, True)
    assert answers[7]["status"] == "deleted"
    assert answers[8]["status"] == "not_found"
    assert answers[9]["items"] == [{"key": "other", "value": 3.5}, {"key": "user:2", "value": None}]


def test_state_list_stops_at_its_byte_budget_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "MAX_LIST_BYTES", 2500)
    store = state.StateStore(tmp_path / "s.db")
    for index in range(5):
        store.set(f"big:{index}", "x" * 1000)
    store.set("big;after", 1)
    items, truncated = store.list("big:", 100)
    assert ([i["key"] for i in items], truncated) == (["big:0", "big:1"], True)
    assert store.list("big:4", 100) == ([{"key": "big:4", "value": "x" * 1000}], False)
    pages, after = [], None
    while True:
        items, truncated = store.list("big:", 2, after)
        pages.append([i["key"] for i in items])
        if not truncated:
            break
        after = items[-1]["key"]
    assert pages == [["big:0", "big:1"], ["big:2", "big:3"], ["big:4"]]
    store.close()


def test_state_prefix_with_a_nul_finds_its_keys(tmp_path):
    store = state.StateStore(tmp_path / "s.db")
    store.set("a\x00b", 1)
    store.set("a\x00c", 2)
    store.set("a", 0)
    assert store.list("a\x00", 10) == (
        [{"key": "a\x00b", "value": 1}, {"key": "a\x00c", "value": 2}],
        False,
    )
    store.close()


def test_state_prefix_is_literal_not_a_pattern(db):
    *_, listed = run_host(
        db,
        ("state:set", {"key": "a%b", "value": 1}),
        ("state:set", {"key": "axb", "value": 2}),
        ("state:list", {"prefix": "a%"}),
    )
    assert [i["key"] for i in listed["items"]] == ["a%b"]


@pytest.mark.parametrize(
    ("event", "data", "fragment"),
    [
        ("state:set", {"value": 1}, "'key': Field required"),
        ("state:set", {"key": "k"}, "'value': Field required"),
        ("state:set", {"key": 5, "value": 1}, "'key': Input should be a valid string"),
        ("state:set", {"key": "", "value": 1}, "'key'"),
        ("state:set", {"key": "k", "value": float("nan")}, "not JSON"),
        ("state:get", {}, "'key': Field required"),
        ("state:delete", {"key": ["k"]}, "'key'"),
        ("state:list", {"limit": 0}, "'limit'"),
        ("state:list", {"prefix": 3}, "'prefix'"),
    ],
)
def test_state_rejects_bad_input_with_invalid_input(db, event, data, fragment):
    [answer] = run_host(db, (event, data))
    assert error_code(answer) == "INVALID_INPUT"
    assert fragment in answer["error"]["message"]
    assert "send {" in answer["error"]["message"] or "not JSON" in answer["error"]["message"]


def test_state_survives_a_restart(db):
    run_host(db, ("state:set", {"key": "k", "value": [1, 2]}))
    [answer] = run_host(db, ("state:get", {"key": "k"}))
    assert answer["value"] == [1, 2]


def test_state_under_concurrent_writers_keeps_every_write(db):
    async def main() -> list[Any]:
        async with Host(plan_of(state.StatePlugin()), db) as host:
            await asyncio.gather(
                *(host.dispatch("state:set", {"key": f"k{i:03}", "value": i}) for i in range(100))
            )
            return await host.dispatch("state:list", {"prefix": "k"})

    listed = asyncio.run(main())
    assert [i["value"] for i in listed["items"]] == list(range(100))


def test_state_defaults_to_the_users_data_dir(ksi_home):
    host = Host(plan_of(state.StatePlugin()), load_config(None, env={"KSI_HOME": str(ksi_home)}))
    asyncio.run(dispatch_all(host, (("state:set", {"key": "k", "value": 1}),)))
    assert (ksi_home / "data" / "state.sqlite3").is_file()


def test_state_rejects_a_bad_path_in_config():
    with pytest.raises(ConfigError, match=r"state\.path must be a file path"):
        state.StatePlugin().ksi_plugin_context({"config": {"state": {"path": 3}}})


def test_state_uses_wal_and_full_sync(tmp_path):
    store = state.StateStore(tmp_path / "s.db")
    try:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        store.close()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda root: root.joinpath("s.db").write_bytes(b"junk" * 100), "not a database"),
        (lambda root: root.joinpath("file").write_text(""), "Not a directory"),
    ],
)
def test_an_unusable_state_database_is_a_clear_error_and_the_host_runs_the_rest(
    tmp_path, make, problem
):
    make(tmp_path)
    path = tmp_path / ("s.db" if problem == "not a database" else "file/sub/s.db")
    with pytest.raises(StateDatabaseError) as caught:
        state.StateStore(path)
    assert problem in caught.value.what
    assert caught.value.where == str(path)
    assert "move it aside" in (caught.value.hint or "")
    config = write_config(tmp_path / "ksi.toml", state=path)
    db = load_config(config, env={"HOME": str(tmp_path / "home")})
    stored, health_answer = run_host(db, ("state:get", {"key": "k"}), ("system:health", {}))
    assert error_code(stored) == "NO_HANDLER"
    assert str(path) in stored["error"]["message"]
    assert health_answer["status"] == "degraded"
    assert health_answer["failed"] == ["state"]


def test_history_filters_by_namespace_and_limit(db):
    *_, answer, limited, guide_style = run_host(
        db,
        ("state:set", {"key": "a", "value": 1}),
        ("system:health", {}),
        ("state:get", {"key": "a"}),
        ("system:history", {"namespace": "state"}),
        ("system:history", {"limit": 1}),
        ("system:history", {"namespace": "/state"}),
    )
    assert [e["name"] for e in answer["events"]] == ["state:set", "state:get"]
    assert [e["name"] for e in limited["events"]] == ["system:history"]
    assert guide_style["namespace"] == "state"


@pytest.mark.parametrize(
    "data", [{"limit": 0}, {"limit": "5"}, {"limit": 10_000}, {"namespace": "Not A NS"}]
)
def test_history_rejects_bad_queries(db, data):
    [answer] = run_host(db, ("system:history", data))
    assert error_code(answer) == "INVALID_INPUT"


def test_history_without_a_bus_is_unavailable():
    plugin = history.HistoryPlugin()
    plugin.ksi_plugin_context({})
    assert error_code(plugin.ksi_handle_event("system:history", {}, None)) == "UNAVAILABLE"


def test_plugin_list_is_the_hosts_status(db):
    [answer] = run_host(db, ("plugin:list", {}))
    by_name = {p["name"]: p for p in answer["plugins"]}
    assert set(by_name) == {m.plugin.name for m in MODULES} | {"daemon_events"}
    assert by_name["daemon_events"]["source"] == f"path {DAEMON_EVENTS}"
    assert answer["schema_version"] == SCHEMA_VERSION
    assert by_name["health"] == {
        "name": "health",
        "version": health.plugin.metadata.version,
        "source": "builtin ksi_plugins_builtin.health",
        "status": "running",
        "position": by_name["health"]["position"],
        "requires": [],
        "reason": None,
        "warnings": [],
        "import_ms": None,
    }
    transport = by_name["unix_socket"]
    assert transport["status"] == "disabled"
    assert transport["reason"]["code"] == "disabled"


def test_plugin_list_without_a_host_is_unavailable():
    plugin = plugins.PluginsPlugin()
    plugin.ksi_plugin_context({})
    assert error_code(plugin.ksi_handle_event("plugin:list", {}, None)) == "UNAVAILABLE"


def test_metrics_without_a_host_is_unavailable():
    plugin = metrics.MetricsPlugin()
    plugin.ksi_plugin_context({})
    answer = asyncio.run(plugin.ksi_handle_event("system:metrics", {}, None))
    assert error_code(answer) == "UNAVAILABLE"
    assert "bare PluginManager" in answer["error"]["message"]


def test_metrics_gathers_every_plugin_and_the_host(db):
    _, answer = run_host(db, ("state:set", {"key": "a", "value": 1}), ("system:metrics", {}))
    assert answer["metrics"]["state"]["keys"] == 1
    own = answer["metrics"]["ksi_host"]
    assert own["plugins"] == {"running": 8, "disabled": 1}
    assert own["metrics_failed"] == []


def test_the_transport_embedded_in_a_host_claims_serves_and_removes_its_socket(tmp_path, sock_path):
    file = write_config(
        tmp_path / "ksi.toml",
        state=tmp_path / "state.sqlite3",
        extra=f"socket_path = {str(sock_path)!r}\n",
    )
    config = load_config(file, env={})

    async def main() -> None:
        async with builtin_host(config, tmp_path / "home", transport=True):
            answer = await asyncio.to_thread(request_sync, sock_path, "system:metrics")
            assert answer["metrics"]["unix_socket"]["requests"] == 1
            assert answer["metrics"]["ksi_host"]["plugins"] == {"running": 9}
        assert not sock_path.exists()

    asyncio.run(main())


def test_the_transport_reports_a_bad_config_section():
    with pytest.raises(ConfigError, match=r"\[server\]"):
        unix_socket.UnixSocketTransport().ksi_plugin_context(
            {"config": {"server": {"max_inflight": -1}}}
        )


@pytest.mark.slow
def test_an_acknowledged_write_survives_kill_9_of_the_daemon(daemon_factory):
    daemon = daemon_factory()
    proc = daemon.start()
    sent = daemon.send("state:set", "--data", '{"key": "k", "value": {"v": 1}}')
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"status": "set", "key": "k"}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    restarted = daemon_factory()
    restarted.start()
    got = restarted.send("state:get", "--data", '{"key": "k"}')
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == {"key": "k", "found": True, "value": {"v": 1}}


def test_state_events_before_startup_are_unavailable_not_internal_errors():
    answer = state.StatePlugin().ksi_handle_event("state:get", {"key": "k"}, {})
    assert answer["error"]["code"] == "UNAVAILABLE"
    assert "before the state plugin started" in answer["error"]["message"]


def _other_user_can_open(path: Path) -> bool:
    """Fork a child that drops to uid 65534 and tries to open ``path`` for reading."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            os._exit(1)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_state_files_are_private_whatever_the_umask(tmp_path):
    path = tmp_path / "data" / "state.sqlite3"
    tmp_path.chmod(0o755)
    previous = os.umask(0)
    try:
        store = state.StateStore(path)
        store.set("secret", "value")
    finally:
        os.umask(previous)
    try:
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in [path.parent, *path.parent.iterdir()]
        }
        assert modes == {
            "data": 0o700,
            "state.sqlite3": 0o600,
            "state.sqlite3-wal": 0o600,
            "state.sqlite3-shm": 0o600,
        }
        path.parent.chmod(0o755)
        assert not _other_user_can_open(path)
        assert state.exposure(path) == [f"{path.parent} (0755)"]
    finally:
        store.close()


def test_an_exposed_state_database_is_reported_at_start_with_the_command_that_fixes_it(
    ksi_home, caplog
):
    path = ksi_home / "data" / "state.sqlite3"
    state.StateStore(path).close()
    path.parent.chmod(0o755)
    path.chmod(0o644)
    plugin = state.StatePlugin()
    plugin.ksi_plugin_context({"config": {}})
    plugin.ksi_startup()
    try:
        [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        listed, fix = warning.removeprefix("other users can read the state database: ").split(
            "; fix: "
        )
        assert listed.split(", ") == [
            f"{path.parent} (0755)",
            f"{path} (0644)",
            f"{path}-wal (0644)",
            f"{path}-shm (0644)",
        ]
        subprocess.run(["sh", "-c", fix], check=True)
        assert state.exposure(path) == []
    finally:
        plugin.ksi_shutdown()


def test_a_state_path_the_operator_chose_is_checked_but_not_its_folder(tmp_path):
    path = tmp_path / "state.db"
    state.StateStore(path).close()
    tmp_path.chmod(0o755)
    assert state.exposure(path, data_dir=False) == []
    path.chmod(0o640)
    assert state.exposure(path, data_dir=False) == [f"{path} (0640)"]
    assert state.private_fix(path, data_dir=False) == f"chmod 600 {path}"


def test_ksi_host_plugins_imports_neither_the_daemon_nor_asyncio(ksi_env: dict[str, str]) -> None:
    """``ksi-host plugins`` plans and imports every built-in to describe it: that must stay cheap.

    The probe runs the command itself, then lists what it imported: the built-ins (all of
    them, or the check proves nothing) and none of the daemon's machinery.
    """
    probe = (
        "import json, runpy, sys\n"
        "sys.argv = ['ksi-host', 'plugins', '--json']\n"
        "try:\n"
        "    runpy.run_module('ksi_host', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ['asyncio', 'ssl', 'sqlite3', 'ksi_host._dispatch', 'ksi_host._server',\n"
        "         'ksi_host._daemon', 'ksi_host._protocol', 'ksi_host._lifecycle',\n"
        "         'ksi_host._catalog', 'ksi_host._isolation',\n"
        "         'ksi_plugins_builtin.nats_bridge._bridge']\n"
        "print(json.dumps({'heavy': [name for name in heavy if name in sys.modules],\n"
        "                  'loaded': sorted(sys.modules)}), file=sys.stderr)\n"
    )
    env = {**os.environ, **ksi_env, "XDG_CONFIG_HOME": ksi_env["HOME"]}
    env.pop("KSI_SOCKET", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    sources = {entry["source"] for entry in json.loads(done.stdout)["plugins"]}
    assert sources >= {f"builtin {module}" for module in PLUGIN_MODULES}
    imported = json.loads(done.stderr.splitlines()[-1])
    assert set(PLUGIN_MODULES) <= set(imported["loaded"])
    assert imported["heavy"] == []
