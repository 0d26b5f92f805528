"""The command line: version, help, and ``python -m ksi_host``."""

from __future__ import annotations

import subprocess
import sys

from ksi_host import __version__
from ksi_host._cli import cli


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ksi-host, version {__version__}\n"


def test_python_dash_m_is_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "ksi_host", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ksi-host, version {__version__}\n"


def test_every_config_option_names_the_files_it_falls_back_to(runner):
    for command in ("run", "send", "plugins", "events", "doctor"):
        result = runner.invoke(cli, [command, "--help"], terminal_width=200)
        assert "$KSI_HOME/config.toml when KSI_HOME is set" in result.output, command
        assert "${XDG_CONFIG_HOME:-~/.config}/ksi/config.toml" in result.output, command


def test_the_cli_imports_a_commands_stages_only_when_it_runs():
    """``ksi-host plugins`` with a thousand plugins must not also pay for the daemon or doctor."""
    heavy = [
        "asyncio",
        "pydantic_settings",
        "ksi_host._config",
        "ksi_host._pipeline",
        "ksi_host._lifecycle",
        "ksi_host._server",
        "ksi_host._client",
        "ksi_host._doctor.diagnose",
        "ksi_host._catalog",
    ]
    probe = f"import sys, ksi_host._cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_command_that_waits_takes_the_same_timeout_option(runner):
    """stop, send, reload and load declare --timeout once (_cli_common.timeout_option)."""
    for command in (["stop"], ["send", "system:health"], ["reload"], ["load", "."]):
        help_text = runner.invoke(cli, [command[0], "--help"], terminal_width=200).output
        assert "--timeout FLOAT RANGE  Seconds to wait for " in help_text, command
        refused = runner.invoke(cli, [*command, "--timeout", "0"])
        assert refused.exit_code == 2, command
        assert "Invalid value for '--timeout': 0.0 is not in the range x>0." in refused.output


def test_config_explains_exactly_the_options_run_takes():
    """`config` shows what `run` would use: its --socket, --config, --plugin-path, --state-db."""
    run, config = cli.commands["run"], cli.commands["config"]
    shared = {param.name for param in config.params} - {"as_json"}
    assert shared == {"socket_path", "config_file", "plugin_paths", "state_db"}
    assert shared <= {param.name for param in run.params}


def test_version_and_help_import_no_pydantic():
    """They answer at once: pydantic, the scan cache and the stages wait for a command."""
    probe = (
        "import sys\n"
        "from ksi_host._cli import cli\n"
        "for args in (['--version'], ['--help']):\n"
        "    try:\n"
        "        cli(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print([m for m in ('pydantic', 'ksi_host._scan_cache') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
