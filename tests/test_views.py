"""Details every view shares: choices, built-ins held to the same rules, the README's config."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import plan_of, subprocess_env

from ksi_host._cli import cli
from ksi_host._config import HostConfig
from ksi_host._lifecycle import Host
from ksi_host._pipeline import plan_for
from ksi_host._resolve import resolve
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from tests.dists import plugin_source

README = Path(__file__).parents[1] / "README.md"


class Greeter(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        return {"by": self.metadata.name}


def _greeter(name: str) -> Greeter:
    return Greeter(PluginMetadata(name=name), PluginCapabilities(commands=["greet:hello"]))


def test_the_operator_picks_who_answers_a_command_several_declare() -> None:
    a, b = _greeter("a"), _greeter("b")
    specs = plan_of(a, b).order
    unchosen = resolve(specs)
    assert [w.code for w in unchosen.warnings] == ["duplicate-command"]
    assert unchosen.warnings[0].plugins == ("a", "b")
    chosen = resolve(specs, command_choices={"greet:hello": "b"})
    assert chosen.warnings == ()
    assert dict(chosen.commands) == {"greet:hello": "b"}

    async def ask(plan: Any) -> Any:
        async with Host(plan) as host:
            return await host.dispatch("greet:hello", {})

    assert asyncio.run(ask(chosen)) == {"by": "b"}
    assert asyncio.run(ask(unchosen))["status"] == "multiple"


def test_a_command_choice_naming_nobody_is_a_warning() -> None:
    plan = resolve(plan_of(_greeter("a")).order, command_choices={"greet:hello": "zed"})
    [warning] = plan.warnings
    assert warning.code == "choice-unused"
    assert "declared by a" in warning.message


def test_the_state_plugins_section_is_checked_like_any_plugins(tmp_path: Path) -> None:
    env = {"KSI_HOME": str(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    plan = plan_for(HostConfig(state={"path": 5}), env=env)
    [exclusion] = [e for e in plan.excluded if e.name == "state"]
    assert exclusion.reason.code == "config-invalid"
    assert exclusion.reason.key == "path"


@pytest.mark.slow
def test_doctor_opens_the_config_at_the_bad_key_and_says_the_host_starts_without_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "ksi.toml"
    config.write_text("[host]\ndisabled = []\n\n[state]\n# the database\npath = 5\n")
    env = {**subprocess_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "ksi_host", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert f"fix:   ${{EDITOR:-vi}} +6 {config}" in result.stdout
    assert (
        "state: config section [state] does not validate: path: Input should be a valid string"
        in (result.stdout)
    )
    assert result.stdout.rstrip().endswith("the host will start without state")


@pytest.mark.slow
def test_the_readmes_example_config_gets_no_warning(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(\[host\].*?)```", README.read_text(), re.S)
    assert block is not None
    (tmp_path / "my-plugins").mkdir()
    config = tmp_path / "config.toml"
    # [nats] names a server on this machine; whether one runs here is not the config's fault
    config.write_text(block.group(1).partition("[nats]")[0])
    env = {**subprocess_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "ksi_host", "doctor", "--strict", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["problems"] == [p for p in report["problems"] if p["code"] == "disabled"]
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_doctor_checks_what_is_installed_not_the_current_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    (cwd / "cwd_only_module.py").write_text("VALUE = 1\n")
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "uses_cwd.py").write_text("import cwd_only_module\n" + plugin_source("uses_cwd"))
    env = {**subprocess_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "ksi_host", "doctor", "--json", "--plugin-path", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    [entry] = [p for p in json.loads(result.stdout)["plugins"] if p["name"] == "uses_cwd"]
    assert (entry["status"], entry["reason"]["code"]) == ("excluded", "import-error")
    assert "No module named 'cwd_only_module'" in entry["reason"]["message"]


def test_json_views_print_json_even_for_a_config_error(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[host]\ndisabled = = 1\n")
    env = {"KSI_HOME": str(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for command in ("plugins", "events"):
        result = runner.invoke(cli, [command, "--json", "--config", str(bad)], env=env)
        assert result.exit_code == 1
        report = json.loads(result.stdout)
        assert (report["schema_version"], report["command"]) == (2, command)
        assert report["error"]["code"] == "config-error"
        assert report["error"]["where"].startswith(f"{bad}, line 2")
