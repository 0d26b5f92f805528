"""Drive the plugin the way ksi-host runs it: ``ksi_harness`` starts a real host around it.

``ksi_harness`` is the pytest fixture ksi-host installs (``ksi_host.testing``): each
``h.send(event, data)`` goes through routing, every plugin's filters and validators and
the handlers, and comes back exactly as a client of the daemon's socket would get it.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from ksi_host import BasePlugin, PluginManager, PluginMetadata, hookimpl
from ksi_host.testing import HarnessFactory

from {{ cookiecutter.module_name }}.plugin import (
    NAMESPACE,
    PLUGIN_NAME,
    {{ cookiecutter.module_name|class_name }},
    plugin,
)

PING = f"{NAMESPACE}:ping"
ECHO = f"{NAMESPACE}:echo"


def fresh() -> {{ cookiecutter.module_name|class_name }}:
    """A new instance per test, so counters never leak from one test into another."""
    return {{ cookiecutter.module_name|class_name }}()


def test_the_entry_point_object_is_a_registrable_plugin() -> None:
    assert PluginManager().pm.register(plugin) == PLUGIN_NAME
    assert plugin.capabilities.event_namespaces == (NAMESPACE,)
    assert set(plugin.capabilities.commands) == {PING, ECHO}


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


def test_ping_answers_pong(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh())
    assert h.status(PLUGIN_NAME).status == "running"
    assert h.send(PING) == {"status": "success", "result": {"reply": "pong"}}


def test_echo_repeats_the_message(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh())
    reply = h.send(ECHO, {"message": "hi", "times": 3})
    assert reply == {"status": "success", "result": {"message": "hi hi hi"}}


@pytest.mark.parametrize(
    ("event", "data", "field"),
    [
        (ECHO, {}, "message"),
        (ECHO, {"message": "hi", "times": 99}, "times"),
        (PING, {"unexpected": 1}, "unexpected"),
    ],
)
def test_the_validator_refuses_bad_input_before_the_handler(
    ksi_harness: HarnessFactory, event: str, data: dict[str, Any], field: str
) -> None:
    reply = ksi_harness(fresh()).send(event, data)
    assert reply["status"] == "error"
    assert reply["error"]["code"] == "INVALID_INPUT"
    assert reply["error"]["plugin"] == PLUGIN_NAME
    assert reply["error"]["message"].startswith(f"{field}: ")


class Shouting(BasePlugin):
    """Another plugin's filter: the handler sees the data it returns, or nothing if it blocks."""

    def __init__(self) -> None:
        super().__init__(metadata=PluginMetadata(name="shouting"))

    @hookimpl
    def ksi_filter_event(self, event_name: str, data: dict[str, Any]) -> dict[str, Any] | None:
        if data.get("message") == "secret":
            return None
        if isinstance(data.get("message"), str):
            return {**data, "message": data["message"].upper()}
        return data


def test_filters_of_other_plugins_run_first(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh(), Shouting())
    assert h.send(ECHO, {"message": "hi"})["result"] == {"message": "HI"}
    blocked = h.send(ECHO, {"message": "secret"})
    assert blocked["error"]["code"] == "BLOCKED"
    assert blocked["error"]["plugin"] == "shouting"


def test_other_events_are_left_to_other_plugins(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh())
    for event_name in ("other:ping", f"{NAMESPACE}:unknown"):
        assert h.send(event_name)["error"]["code"] == "NO_HANDLER"


def test_config_section_sets_the_reply(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh(), config={PLUGIN_NAME: {"reply": "hello"}})
    assert h.send(PING)["result"] == {"reply": "hello"}


def test_bad_config_section_stops_the_plugin_not_the_host(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh(), config={PLUGIN_NAME: {"repl": "typo"}})
    status = h.status(PLUGIN_NAME)
    assert status.status == "excluded"
    assert status.reason is not None
    assert status.reason.code == "config-invalid"
    assert "repl" in status.reason.message


def test_metrics_count_answers_and_errors(ksi_harness: HarnessFactory) -> None:
    h = ksi_harness(fresh())
    h.send(PING)
    h.send(PING)
    h.send(ECHO)
    assert h.metrics()[PLUGIN_NAME] == {"events_handled": {"ping": 2}, "errors": {"echo": 1}}
