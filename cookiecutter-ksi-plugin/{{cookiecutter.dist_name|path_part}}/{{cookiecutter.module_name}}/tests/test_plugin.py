"""Drive the plugin through ksi_host's public API, the way the host calls it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from ksi_host.plugin_manager import PluginManager
from pydantic import ValidationError

from {{ cookiecutter.module_name }}.plugin import (
    NAMESPACE,
    PLUGIN_NAME,
    {{ cookiecutter.module_name|class_name }},
    plugin,
)


@pytest.fixture
def manager() -> PluginManager:
    manager = PluginManager()
    manager.pm.register({{ cookiecutter.module_name|class_name }}())
    return manager


def send(manager: PluginManager, action: str, data: dict[str, Any]) -> Any:
    [reply] = manager.pm.hook.ksi_handle_event(
        event_name=f"{NAMESPACE}:{action}", data=data, context={}
    )
    return reply


def test_the_entry_point_object_is_a_registrable_plugin() -> None:
    assert PluginManager().pm.register(plugin) == PLUGIN_NAME
    assert plugin.capabilities.event_namespaces == (NAMESPACE,)
    assert set(plugin.capabilities.commands) == {f"{NAMESPACE}:ping", f"{NAMESPACE}:echo"}


def test_the_shipped_manifest_matches_the_code() -> None:
    """ksi-plugin.toml lets ksi-host list and route the plugin without importing it.

    After changing the metadata, capabilities or hooks, regenerate it with
    ``ksi-host manifest {{ cookiecutter.module_name }}.plugin:plugin -o {{ cookiecutter.module_name }}/ksi-plugin.toml``.
    """
    check = ["manifest", "--check", "{{ cookiecutter.module_name }}.plugin:plugin"]
    done = subprocess.run(
        [sys.executable, "-m", "ksi_host", *check], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ping_answers_pong(manager: PluginManager) -> None:
    assert send(manager, "ping", {}) == {"status": "success", "result": {"reply": "pong"}}


def test_echo_repeats_the_message(manager: PluginManager) -> None:
    reply = send(manager, "echo", {"message": "hi", "times": 3})
    assert reply == {"status": "success", "result": {"message": "hi hi hi"}}


@pytest.mark.parametrize(
    ("action", "data", "field"),
    [
        ("echo", {}, "message"),
        ("echo", {"message": "hi", "times": 99}, "times"),
        ("ping", {"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_input_gets_an_invalid_input_reply(
    manager: PluginManager, action: str, data: dict[str, Any], field: str
) -> None:
    reply = send(manager, action, data)
    assert reply["status"] == "error"
    assert reply["error"]["code"] == "INVALID_INPUT"
    assert field in reply["error"]["message"]


def test_other_events_are_left_to_other_plugins(manager: PluginManager) -> None:
    for event_name in ("other:ping", f"{NAMESPACE}:unknown"):
        assert manager.pm.hook.ksi_handle_event(event_name=event_name, data={}, context={}) == []


def test_config_section_sets_the_reply(manager: PluginManager) -> None:
    manager.pm.hook.ksi_plugin_context(context={"config": {PLUGIN_NAME: {"reply": "hello"}}})
    assert send(manager, "ping", {})["result"] == {"reply": "hello"}


def test_bad_config_section_is_refused(manager: PluginManager) -> None:
    with pytest.raises(ValidationError, match="repl"):
        manager.pm.hook.ksi_plugin_context(context={"config": {PLUGIN_NAME: {"repl": "typo"}}})


def test_metrics_count_answers_and_errors(manager: PluginManager) -> None:
    send(manager, "ping", {})
    send(manager, "ping", {})
    send(manager, "echo", {})
    [metrics] = manager.pm.hook.ksi_metrics_collected(metrics={})
    assert metrics[PLUGIN_NAME] == {"events_handled": {"ping": 2}, "errors": {"echo": 1}}
