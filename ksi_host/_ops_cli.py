"""The subcommands that operate a daemon and explain settings: config, status, stop.

Imported with :mod:`ksi_host._cli`, so light: each command loads its stages when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ksi_host._cli_common import (
    DAEMON_OPTIONS,
    RUN_OPTIONS,
    exit_on_error,
    server_config,
    timeout_option,
)
from ksi_host._defaults import STOP_TIMEOUT

__all__ = ["COMMANDS"]


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (ConfigReport).")
@RUN_OPTIONS
@click.pass_context
def show_config(
    ctx: click.Context,
    as_json: bool,
    socket_path: Path | None,
    config_file: Path | None,
    plugin_paths: tuple[str, ...],
    state_db: Path | None,
) -> None:
    """Show the effective configuration, each value with where it came from.

    What run uses: a value comes from a flag (the ones run takes), a KSI_* environment
    variable, the config file (file:line), or the default, in that order of precedence.
    """
    from ksi_host._config_report import config_report, render_config

    if ctx.get_parameter_source("state_db") is click.core.ParameterSource.ENVIRONMENT:
        state_db = None  # the report names KSI_STATE_DB itself
    with exit_on_error():
        report = config_report(
            config_file, socket_path=socket_path, state_db=state_db, plugin_paths=plugin_paths
        )
    click.echo(report.model_dump_json(indent=2) if as_json else render_config(report))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (DaemonStatus).")
@DAEMON_OPTIONS
def status(as_json: bool, socket_path: Path | None, config_file: Path | None) -> None:
    """Say whether a daemon runs on the socket: pid, uptime, version, plugins.

    Exits 0 when one runs, 3 when none does (as systemctl status does).
    """
    from ksi_host._config import load_config
    from ksi_host._control import NOT_RUNNING_EXIT, daemon_status, render_status

    with exit_on_error():
        server = server_config(load_config(config_file), config_file, socket_path)
        info = daemon_status(server.socket_path)
    click.echo(info.model_dump_json(indent=2) if as_json else render_status(info))
    raise SystemExit(0 if info.running else NOT_RUNNING_EXIT)


@click.command()
@DAEMON_OPTIONS
@timeout_option(STOP_TIMEOUT, "the daemon to drain and stop")
def stop(socket_path: Path | None, config_file: Path | None, timeout: float) -> None:
    """Ask the daemon on the socket to drain and stop (SIGTERM), and wait until it has.

    Exits 0 once it stopped (or when none was running), 1 if it is still running
    after --timeout or the pid in the socket's lock is not a ksi-host daemon.
    """
    from ksi_host._config import load_config
    from ksi_host._control import stop_daemon

    with exit_on_error():
        server = server_config(load_config(config_file), config_file, socket_path)
        pid = stop_daemon(server.socket_path, timeout)
    if pid is None:
        click.echo(f"ksi-host is not running (socket {server.socket_path})")
    else:
        click.echo(f"ksi-host (pid {pid}) stopped")


COMMANDS = (show_config, status, stop)
