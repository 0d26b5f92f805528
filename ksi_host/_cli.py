"""The ``ksi-host`` command line: each subcommand renders errors and picks the exit code."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import click

from ksi_host import __version__
from ksi_host._catalog import event_catalog, render_catalog
from ksi_host._client import DEFAULT_TIMEOUT, request_sync
from ksi_host._config import HostConfig, load_config
from ksi_host._daemon import run_daemon
from ksi_host._doctor.diagnose import diagnose
from ksi_host._doctor.isolate import DEFAULT_TIMEOUT as DOCTOR_TIMEOUT
from ksi_host._doctor.report import render_text as render_doctor
from ksi_host._isolation import kill_workers
from ksi_host._paths import KsiPaths
from ksi_host._pipeline import DaemonRun, plan_for
from ksi_host._plans_report import plan_report, render_text
from ksi_host._quarantine import Quarantine, StartMarker
from ksi_host._server import ServerConfig
from ksi_host.errors import KsiError

__all__ = ["cli", "main"]

logger: Final = logging.getLogger("ksi_host.cli")

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The TOML config file (default: $KSI_CONFIG, else $KSI_HOME/config.toml when "
    "KSI_HOME is set, else ${XDG_CONFIG_HOME:-~/.config}/ksi/config.toml).",
)

PLUGIN_PATH_OPTION = click.option(
    "--plugin-path",
    "plugin_paths",
    multiple=True,
    metavar="PATH",
    help="A plugin file, folder or dotted module to load first (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ksi-host")
def cli() -> None:
    """Discover, check and run KSI plugins."""


def main() -> None:
    """Console-script entry point."""
    cli()


@contextmanager
def _exit_on_error() -> Iterator[None]:
    """Show a KsiError as what/where/hint and exit with its code; anything else is a bug."""
    try:
        yield
    except KsiError as exc:
        click.echo(exc.render(), err=True)
        raise SystemExit(exc.exit_code) from None


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (PlanReport).")
@PLUGIN_PATH_OPTION
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of each failed import.")
@CONFIG_OPTION
def plugins(
    as_json: bool, plugin_paths: tuple[str, ...], verbose: bool, config_file: Path | None
) -> None:
    """Show which plugins will load, in which order, and why the others will not.

    Exits 1 when a plugin found cannot load; disabled and shadowed ones do not count.
    """
    with _exit_on_error():
        report = plan_report(plan_for(load_config(config_file), paths=plugin_paths))
    click.echo(
        report.model_dump_json(indent=2) if as_json else render_text(report, tracebacks=verbose)
    )
    raise SystemExit(0 if report.ok else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON (EventCatalog).")
@PLUGIN_PATH_OPTION
@CONFIG_OPTION
def events(as_json: bool, plugin_paths: tuple[str, ...], config_file: Path | None) -> None:
    """List every event the plugins that will load declare, with the plugin that handles it."""
    with _exit_on_error():
        catalog = event_catalog(plan_for(load_config(config_file), paths=plugin_paths))
    click.echo(catalog.model_dump_json(indent=2) if as_json else render_catalog(catalog))


# --- daemon ---

_LOG_LEVELS = ("debug", "info", "warning", "error")

SOCKET_OPTION = click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The daemon's socket (default: $KSI_SOCKET, else socket_path in the config's "
    "[server] section, else ksi.sock in the run dir).",
)


def _server_config(
    config: HostConfig, config_file: Path | None, socket_path: Path | None
) -> ServerConfig:
    """The same socket for ``run`` and ``send``: see :meth:`ServerConfig.from_section`."""
    where = f"[server] section of {_config_path(config_file)}"
    return ServerConfig.from_section(config.server, where=where, socket_path=socket_path)


@cli.command()
@SOCKET_OPTION
@CONFIG_OPTION
@PLUGIN_PATH_OPTION
@click.option(
    "--state-db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KSI_STATE_DB",
    default=None,
    help="The state plugin's SQLite file [env KSI_STATE_DB; default: path in the config's "
    "[state] section, else state.sqlite3 in the data dir].",
)
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="What the daemon logs to stderr.",
)
def run(
    socket_path: Path | None,
    config_file: Path | None,
    plugin_paths: tuple[str, ...],
    state_db: Path | None,
    log_level: str,
) -> None:
    """Serve events over the Unix socket with every plugin that can load, until SIGTERM."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    with _exit_on_error():
        config = load_config(config_file)
        _log_config_file(config_file)
        server = _server_config(config, config_file, socket_path)
        if state_db is not None:
            state = {**(config.plugin_section("state") or {}), "path": str(state_db)}
            config = config.model_copy(update={"state": state})
        marker = StartMarker(
            server.socket_path.with_name(server.socket_path.name + ".starting"),
            Quarantine.from_env(),
        )
        daemon = DaemonRun(config, paths=plugin_paths, marker=marker)
        code = asyncio.run(
            run_daemon(
                daemon.start,
                daemon.stop,
                server,
                stop_grace=config.host.stop_grace,
                emergency=(kill_workers,),
            )
        )
    raise SystemExit(code)


def _config_path(config_file: Path | None) -> Path:
    return config_file or KsiPaths.from_env().config_file


def _log_config_file(config_file: Path | None) -> None:
    file = _config_path(config_file)
    if file.is_file():
        logger.info("config %s", file)
    else:
        logger.info("config %s not found: using the defaults", file)


def _parse_data(ctx: click.Context, param: click.Parameter, value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f'not JSON ({exc.msg} at column {exc.colno}); e.g. --data \'{{"key": "k"}}\''
        ) from None
    if not isinstance(data, dict):
        raise click.BadParameter('must be a JSON object, e.g. --data \'{"key": "k"}\'')
    return data


@cli.command()
@click.argument("event")
@click.option(
    "--data", callback=_parse_data, default="{}", show_default=True, help="The event's data."
)
@SOCKET_OPTION
@CONFIG_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the reply.",
)
@click.pass_context
def send(
    ctx: click.Context,
    event: str,
    data: dict[str, Any],
    socket_path: Path | None,
    config_file: Path | None,
    timeout: float,
) -> None:
    """Send EVENT to the running daemon and print its answer as JSON.

    Finds the socket as ``ksi-host run`` does, so the same flags, environment and
    config reach the same daemon.
    """
    with _exit_on_error():
        server = _server_config(load_config(config_file), config_file, socket_path)
        answer = request_sync(server.socket_path, event, data, timeout)
    click.echo(json.dumps(answer, indent=2, sort_keys=True))
    if answer.get("status") == "error":
        ctx.exit(1)


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (DoctorReport).")
@PLUGIN_PATH_OPTION
@CONFIG_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DOCTOR_TIMEOUT,
    show_default=True,
    help="Seconds one plugin may take to import before it counts as hung.",
)
@click.option("--strict", is_flag=True, help="Also exit 1 on warnings.")
@click.option("-v", "--verbose", is_flag=True, help="Show whole tracebacks, not their last lines.")
def doctor(
    as_json: bool,
    plugin_paths: tuple[str, ...],
    config_file: Path | None,
    timeout: float,
    strict: bool,
    verbose: bool,
) -> None:
    """Check every plugin without starting any, and print a fix for each problem.

    Each plugin is imported in a separate process with a timeout, so one that
    crashes, hangs or exits cannot stop the check. Exits 0 when everything can
    load, 1 when a problem is an error (with --strict: or a warning).
    """
    with _exit_on_error():
        report = diagnose(paths=plugin_paths, config_file=config_file, timeout=timeout)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        color = False if os.environ.get("NO_COLOR") else None
        click.echo(render_doctor(report, tracebacks=verbose), color=color)
    raise SystemExit(report.exit_code(strict=strict))


@cli.command()
@click.argument("name")
def reenable(name: str) -> None:
    """Load plugin NAME again after it crashed the daemon while starting (it was quarantined)."""
    quarantine = Quarantine.from_env()
    removed = quarantine.reenable(name)
    if not removed:
        names = ", ".join(entry.name for entry in quarantine.entries()) or "none"
        click.echo(f"{name} is not quarantined (quarantined: {names})", err=True)
        raise SystemExit(1)
    click.echo(f"{name} will be loaded again by the next `ksi-host run`")
