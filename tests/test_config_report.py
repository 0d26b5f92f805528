"""``ksi-host config``: every effective value with the flag, variable, file line or default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

from ksi_host._config_report import key_lines


def test_key_lines_follow_tables_dotted_keys_and_quoted_names():
    text = (
        "# comment\n"
        "[host]\n"
        'disabled = ["a",\n'
        '  "b"]\n'
        "services.db = 'state'\n"
        "[host.extra]\n"
        '"odd key" = 1\n'
        "[ state ]  # the state plugin\n"
        "path = '/x'\n"
    )
    assert key_lines(text) == {
        ("host",): 2,
        ("host", "disabled"): 3,
        ("host", "services"): 5,
        ("host", "services", "db"): 5,
        ("host", "extra"): 6,
        ("host", "extra", "odd key"): 7,
        ("state",): 8,
        ("state", "path"): 9,
    }


def _config(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ksi_host", "config", *args],
        capture_output=True,
        text=True,
        env={**subprocess_env(home), **env},
        check=False,
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "ksi.toml"
    path.write_text(
        "[host]\n"
        'disabled = ["noisy"]\n'
        "shutdown_timeout = 3.5\n"
        "\n"
        "[server]\n"
        "max_connections = 8\n"
        "\n"
        "[state]\n"
        'path = "/data/state.db"\n'
        "\n"
        "[weather]\n"
        'city = "Oslo"\n'
    )
    return path


def test_each_value_says_whether_a_flag_variable_file_line_or_default_set_it(tmp_path, config_file):
    result = _config(
        tmp_path / "home",
        "--json",
        *("--config", str(config_file)),
        *("--socket", str(tmp_path / "flag.sock")),
        *("--plugin-path", "/opt/plugins"),
        KSI_HOST__MAX_EMIT_DEPTH="7",
        KSI_WEATHER__UNITS="metric",
        KSI_STATE_DB="/env/state.db",
        KSI_TRACE="state",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["file"] == str(config_file)
    assert report["file_found"] is True
    assert report["file_chosen_by"] == "--config"
    by_key = {v["key"]: (v["value"], v["source"], v["where"]) for v in report["values"]}
    assert by_key["host.disabled"] == (["noisy"], "file", f"{config_file}:2")
    assert by_key["host.shutdown_timeout"] == (3.5, "file", f"{config_file}:3")
    assert by_key["host.startup_timeout"] == (30.0, "default", "default")
    assert by_key["host.max_emit_depth"] == (7, "env", "KSI_HOST__MAX_EMIT_DEPTH")
    assert by_key["host.plugin_paths"] == (["/opt/plugins"], "flag", "--plugin-path")
    assert by_key["server.socket_path"] == (str(tmp_path / "flag.sock"), "flag", "--socket")
    assert by_key["server.max_connections"] == (8, "file", f"{config_file}:6")
    assert by_key["server.idle_timeout"] == (300.0, "default", "default")
    assert by_key["state.path"] == ("/env/state.db", "env", "KSI_STATE_DB")
    assert by_key["weather.city"] == ("Oslo", "file", f"{config_file}:12")
    assert by_key["weather.units"] == ("metric", "env", "KSI_WEATHER__UNITS")
    assert by_key["home"] == (str(tmp_path / "home" / ".ksi"), "env", "KSI_HOME")
    assert by_key["trace"] == (["state"], "env", "KSI_TRACE")

    text = _config(
        tmp_path / "home",
        *("--config", str(config_file)),
        *("--state-db", "/flag/state.db"),
        KSI_SOCKET=str(tmp_path / "env.sock"),
    ).stdout.splitlines()
    assert text[0] == f"# config file: {config_file} (chosen by --config)"
    assert "[host]" in text
    settings = {
        key.strip(): (value.split("  #")[0].strip(), value.rpartition("# ")[2])
        for key, _, value in (line.partition(" = ") for line in text)
        if value
    }
    assert settings["socket_path"] == (f'"{tmp_path / "env.sock"}"', "KSI_SOCKET")
    assert settings["path"] == ('"/flag/state.db"', "--state-db")
    assert next(line for line in text if "# home" in line).endswith("# KSI_HOME")


def test_without_a_file_every_value_is_a_default_and_the_output_is_toml(tmp_path):
    result = _config(tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"# config file: {tmp_path / 'home' / '.ksi' / 'config.toml'} (chosen by KSI_HOME) "
        "(not found: every value is the default)"
    )
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads(result.stdout)
    assert data["host"]["max_emit_depth"] == 32
    assert data["server"]["socket_path"] == str(tmp_path / "home" / ".ksi" / "run" / "ksi.sock")


def test_a_typo_in_a_key_is_an_error_with_the_closest_key_and_in_a_table_a_note(tmp_path):
    config = tmp_path / "ksi.toml"
    config.write_text("[host]\nstartup_timout = 5\n")
    result = _config(tmp_path / "home", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines()[:3] == [
        "error[config-error]: invalid configuration:",
        "    - host.startup_timout = 5: unknown key 'startup_timout'; "
        "did you mean 'startup_timeout'?",
        f"  where: {config}, key 'host.startup_timout'",
    ]
    config.write_text("[sever]\nmax_connections = 5\n")
    result = _config(tmp_path / "home", "--config", str(config))
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == (
        "# note: [sever] is read as the section of a plugin named 'sever'; did you mean 'server'?"
    )
