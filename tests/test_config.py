"""Config: one TOML file plus KSI_ environment overrides; every bad input says what and where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ksi_host._config import HostConfig, load_config
from ksi_host.errors import ConfigError

FULL = """
[host]
plugin_paths = ["/opt/plugins"]
disabled = ["noisy"]
services = { database = "sqlite_db" }

[server]
socket = "/run/ksi.sock"
backlog = 8

[my_plugin]
setting = "from-file"
retries = 2
"""


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose KSI_HOME is a temporary dir (never the real home)."""
    return {"HOME": str(tmp_path / "home"), "KSI_HOME": str(tmp_path / "ksi")}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_default_file_means_defaults(home):
    config = load_config(env=home)
    assert config == HostConfig()
    assert config.as_context_dict() == {
        "host": {
            "plugin_paths": [],
            "disabled": [],
            "services": {},
            "commands": {},
            "trust_paths": [],
            "startup_timeout": 30.0,
            "shutdown_timeout": 10.0,
            "max_emit_depth": 32,
            "call_timeout": 30.0,
            "call_timeouts": {},
            "watchdog_threshold": 0.5,
            "stop_grace": 10.0,
            "isolated": [],
            "restart_limit": 5,
            "restart_window": 60.0,
            "worker_memory_mb": None,
            "worker_cpu_seconds": None,
            "history_size": 1000,
            "history_bytes": 4 * 1024 * 1024,
        },
        "server": {},
    }


def test_the_default_file_lives_in_ksi_home(home):
    write(Path(home["KSI_HOME"]) / "config.toml", FULL)
    config = load_config(env=home)
    assert config.host.disabled == ["noisy"]
    assert config.host.services == {"database": "sqlite_db"}
    assert config.server == {"socket": "/run/ksi.sock", "backlog": 8}
    assert config.plugin_sections == {"my_plugin": {"setting": "from-file", "retries": 2}}
    assert config.as_context_dict()["my_plugin"] == {"setting": "from-file", "retries": 2}


def test_plugin_sections_match_by_canonical_name(tmp_path, home):
    config = load_config(write(tmp_path / "c.toml", '["My.Plugin"]\na = 1\n'), env=home)
    assert config.plugin_section("my_plugin") == {"a": 1}
    assert config.plugin_section("My.Plugin") == {"a": 1}
    assert config.plugin_section("other") is None


def test_the_host_and_the_plan_pick_the_same_section_when_two_names_fold_together(tmp_path, home):
    text = '["my-plugin"]\na = 1\n[my_plugin]\na = 2\n'
    config = load_config(write(tmp_path / "c.toml", text), env=home)
    assert config.sections_by_key()["my-plugin"] == {"a": 1}
    assert config.plugin_section("my_plugin") == config.plugin_section("my-plugin") == {"a": 1}


def test_ksi_config_names_the_file(tmp_path, home):
    path = write(tmp_path / "elsewhere.toml", "[host]\ndisabled = ['x']\n")
    assert load_config(env={**home, "KSI_CONFIG": str(path)}).host.disabled == ["x"]


def test_an_explicit_path_wins_over_ksi_config(tmp_path, home):
    explicit = write(tmp_path / "explicit.toml", "[host]\ndisabled = ['explicit']\n")
    other = write(tmp_path / "other.toml", "[host]\ndisabled = ['other']\n")
    config = load_config(explicit, env={**home, "KSI_CONFIG": str(other)})
    assert config.host.disabled == ["explicit"]


@pytest.mark.parametrize("how", ["argument", "KSI_CONFIG"])
def test_a_missing_requested_file_is_an_error(tmp_path, home, how):
    missing = tmp_path / "nope.toml"
    path, env = (
        (missing, home) if how == "argument" else (None, {**home, "KSI_CONFIG": str(missing)})
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert str(info.value) == (
        f"error[config-error]: config file {str(missing)!r} does not exist\n"
        "  where: --config or KSI_CONFIG\n"
        "  hint: create the file, or point --config/KSI_CONFIG at an existing TOML file"
    )


def test_environment_overrides_the_file(tmp_path, home):
    path = write(tmp_path / "c.toml", FULL)
    env = {
        **home,
        "KSI_HOST__DISABLED": '["a", "b"]',
        "KSI_HOST__SERVICES__CACHE": "redis",
        "KSI_SERVER__SOCKET": "/tmp/other.sock",
        "KSI_MY_PLUGIN__SETTING": "from-env",
    }
    config = load_config(path, env=env)
    assert config.host.disabled == ["a", "b"]
    assert config.host.plugin_paths == ["/opt/plugins"]
    assert config.host.services == {"database": "sqlite_db", "cache": "redis"}
    assert config.server == {"socket": "/tmp/other.sock", "backlog": 8}
    assert config.plugin_section("my_plugin") == {"setting": "from-env", "retries": 2}


def test_environment_can_set_a_plugin_section_the_file_lacks(home):
    config = load_config(env={**home, "KSI_STATE__PATH": "/tmp/state.db", "KSI_HOME_X": "1"})
    assert config.plugin_section("state") == {"path": "/tmp/state.db"}
    assert config.as_context_dict()["state"] == {"path": "/tmp/state.db"}


@pytest.mark.parametrize("spelling", ["Host", "HOST"])
def test_the_host_and_server_tables_match_in_any_case(tmp_path, home, spelling):
    """The first spelling in the file wins; another spelling of the same table is dropped."""
    text = f'[{spelling}]\ndisabled = ["a"]\n[host]\ndisabled = ["b"]\n[SERVER]\nsocket = "/s"\n'
    config = load_config(write(tmp_path / "c.toml", text), env=home)
    assert (config.host.disabled, config.server) == (["a"], {"socket": "/s"})
    assert config.plugin_sections == {}


def test_a_whole_table_can_come_from_one_variable(tmp_path, home):
    """``KSI_HOST`` / ``KSI_<SECTION>`` (JSON, no ``__``) replace or extend a whole table."""
    path = write(tmp_path / "c.toml", FULL)
    env = {**home, "KSI_HOST": '{"disabled": ["x"]}', "ksi_my_plugin": '{"retries": 5}'}
    config = load_config(path, env=env)
    assert config.host.disabled == ["x"]
    assert config.host.plugin_paths == ["/opt/plugins"]
    assert config.plugin_section("my_plugin") == {"setting": "from-file", "retries": 5}


def test_without_an_override_variable_pydantic_settings_is_not_imported(tmp_path, home):
    """Its import costs more than reading the config; KSI_HOME and the like override nothing."""
    path = write(tmp_path / "c.toml", FULL)
    env = {**home, "KSI_CONFIG": str(path), "KSI_LOOP": "asyncio", "KSI_TRACE": "1"}
    probe = (
        "import sys; from ksi_host._config import load_config\n"
        f"config = load_config(env={env!r})\n"
        "print(config.host.disabled, 'pydantic_settings' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["['noisy']", "False"]


def test_toml_syntax_errors_give_line_and_column(tmp_path, home):
    path = write(tmp_path / "c.toml", "[host]\ndisabled = [1,,]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=home)
    assert info.value.what.startswith("config file is not valid TOML: ")
    assert info.value.where == f"{path}, line 2, column 15"
    assert (info.value.file, info.value.line, info.value.column) == (path, 2, 15)


def test_wrong_types_name_the_file_and_key(tmp_path, home):
    path = write(tmp_path / "c.toml", "[host]\ndisabled = 'noisy'\ncolour = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=home)
    assert info.value.what == (
        "invalid configuration:\n"
        '    - host.disabled = "noisy": Input should be a valid list\n'
        "    - host.colour = 1: unknown key 'colour'"
    )
    assert info.value.where == f"{path}, key 'host.disabled'; {path}, key 'host.colour'"
    assert (info.value.file, info.value.keys) == (path, ("host.disabled", "host.colour"))
    assert info.value.env_variables == ()


def test_a_mistyped_key_gets_the_closest_allowed_one(tmp_path, home):
    path = write(tmp_path / "c.toml", "[host]\nmax_emit_dept = 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=home)
    assert info.value.what == (
        "invalid configuration:\n"
        "    - host.max_emit_dept = 4: unknown key 'max_emit_dept'; did you mean 'max_emit_depth'?"
    )
    with pytest.raises(ConfigError) as info:
        load_config(env={**home, "KSI_HOST__DISABLD": '["a"]'})
    assert "unknown key 'disabld'; did you mean 'disabled'?" in info.value.what
    assert info.value.where == "environment variable KSI_HOST__DISABLD, key 'host.disabld'"


def test_wrong_types_from_the_environment_name_the_variable(home):
    with pytest.raises(ConfigError) as info:
        load_config(env={**home, "KSI_HOST__SERVICES": '{"db": 1}'})
    assert info.value.where == "environment variable KSI_HOST__SERVICES, key 'host.services.db'"
    assert info.value.env_variables == ("KSI_HOST__SERVICES",)
    assert (info.value.file, info.value.keys) == (None, ("host.services.db",))


def test_unparseable_environment_values_are_config_errors(home):
    with pytest.raises(ConfigError) as info:
        load_config(env={**home, "KSI_HOST__DISABLED": "hello", "KSI_STATE__PATH": "/x"})
    assert info.value.what == (
        "an environment override is not valid JSON where a list or table is expected"
    )
    assert info.value.where == "environment variables KSI_HOST__DISABLED"
    assert info.value.env_variables == ("KSI_HOST__DISABLED",)
    assert "_EnvSource" not in str(info.value)
    assert "JSON" in info.value.hint


def test_top_level_values_must_be_tables(tmp_path, home):
    path = write(tmp_path / "c.toml", "debug = true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=home)
    assert info.value.what == "top-level key 'debug' is a bool, not a table"
    assert info.value.where == f"{path}, key 'debug'"
    assert (info.value.file, info.value.keys) == (path, ("debug",))


def test_unreadable_files_are_config_errors(tmp_path, home):
    binary = tmp_path / "c.toml"
    binary.write_bytes(b"\xff\xfe[host]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary, env=home)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, env=home)
