"""The ``ksi-host`` command line: each subcommand renders errors and picks the exit code.

Each command imports the stages it needs when it runs, not when this module loads:
``ksi-host plugins`` never pays for asyncio, the socket server or the doctor, and with
a thousand plugins installed every millisecond of start-up counts (see BENCHMARKS.md).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from ksi_host import __version__
from ksi_host._cli_common import (
    CONFIG_OPTION,
    DAEMON_OPTIONS,
    PLUGIN_PATH_OPTION,
    RUN_OPTIONS,
    config_path,
    daemon_socket,
    doctor_socket,
    exit_on_error,
    server_config,
    timeout_option,
)
from ksi_host._defaults import (
    DOCTOR_IMPORT_TIMEOUT,
    GRAPH_FORMATS,
    LOG_BACKUPS,
    LOG_FORMATS,
    LOG_MAX_BYTES,
    LOOP_CHOICES,
    REQUEST_TIMEOUT,
    LoopChoice,
)
from ksi_host._manage.cli import COMMANDS as MANAGE_COMMANDS
from ksi_host._manifest_cli import manifest
from ksi_host._ops_cli import COMMANDS as OPS_COMMANDS

if TYPE_CHECKING:
    from ksi_host._graph import GraphFormat
    from ksi_host._logging import LogFormat

__all__ = ["cli", "main"]

logger: Final = logging.getLogger("ksi_host.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ksi-host")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Discover, check and run KSI plugins."""
    from ksi_host._pydantic_plugins import spare_pydantic_scan
    from ksi_host._scan_cache import ScanCache

    spare_pydantic_scan()  # before any command builds a pydantic model
    ctx.call_on_close(ScanCache.drop_early)  # its dating of sys.path is this command's only


for _command in (*MANAGE_COMMANDS, manifest, *OPS_COMMANDS):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (PlanReport).")
@PLUGIN_PATH_OPTION
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of each failed import.")
@CONFIG_OPTION
@click.option(
    "--graph", is_flag=True, help="Show the dependency graph: each plugin under what it needs."
)
@click.option(
    "--format",
    "graph_format",
    type=click.Choice(GRAPH_FORMATS),
    default="text",
    show_default=True,
    help="With --graph: a text tree, Graphviz DOT, or Mermaid (for Markdown).",
)
@click.option(
    "--why", metavar="NAME", help="With --graph: the chain that puts NAME where it is, or out."
)
def plugins(
    as_json: bool,
    plugin_paths: tuple[str, ...],
    verbose: bool,
    config_file: Path | None,
    graph: bool,
    graph_format: GraphFormat,
    why: str | None,
) -> None:
    """Show which plugins will load, in which order, and why the others will not.

    Exits 1 when a plugin found cannot load; disabled and shadowed ones do not count.
    When a daemon runs on the configured socket, its view is merged in: a plugin
    that failed to start there, or that it does not run, counts as well.
    """
    from ksi_host._answer_cache import PlanWatch, keep_plan_answer
    from ksi_host._config import load_config
    from ksi_host._daemon_view import verdicts
    from ksi_host._pipeline import plan_for
    from ksi_host._plans_report import plan_report, render_text

    if (graph_format != "text" or why) and not graph:
        raise click.UsageError("--format and --why go with --graph")
    if graph and as_json:
        raise click.UsageError("--graph prints text, DOT or Mermaid; use --json without it")
    watch = PlanWatch()
    with exit_on_error("plugins" if as_json else None):
        config = load_config(config_file)
        plan = plan_for(config, paths=plugin_paths, reporter=watch, kept_descriptions=True)
        socket = daemon_socket(config, config_file)
        entries, daemon = verdicts(plan, socket)
    if graph:
        from ksi_host._graph import show_graph

        raise SystemExit(show_graph(plan, entries, daemon, graph_format, why))
    report = plan_report(plan, entries, daemon)
    output = (
        report.model_dump_json(indent=2) if as_json else render_text(report, tracebacks=verbose)
    )
    click.echo(output)
    code = 0 if report.ok else 1
    keep_plan_answer(
        f"{output}\n",
        code,
        config=config,
        config_file=config_file,
        paths=plugin_paths,
        watch=watch,
        socket=socket,
        daemon=daemon,
    )
    raise SystemExit(code)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON (EventCatalog).")
@PLUGIN_PATH_OPTION
@CONFIG_OPTION
def events(as_json: bool, plugin_paths: tuple[str, ...], config_file: Path | None) -> None:
    """List every event the plugins that will load declare, with the plugin that handles it."""
    from ksi_host._catalog import event_catalog, render_catalog
    from ksi_host._config import load_config
    from ksi_host._daemon_view import verdicts
    from ksi_host._pipeline import plan_for

    with exit_on_error("events" if as_json else None):
        config = load_config(config_file)
        plan = plan_for(config, paths=plugin_paths, kept_descriptions=True)
        catalog = event_catalog(plan, *verdicts(plan, daemon_socket(config, config_file)))
    click.echo(catalog.model_dump_json(indent=2) if as_json else render_catalog(catalog))


# --- daemon ---

_LOG_LEVELS = ("debug", "info", "warning", "error")


@cli.command()
@RUN_OPTIONS
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="What the daemon logs (debug: also one line per event).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Log to this file, rotated by size, instead of stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="json: one object per line (time, level, logger, plugin, event, correlation_id, "
    "message), for journald or a collector.",
)
@click.option(
    "--log-max-bytes",
    type=click.IntRange(min=1024),
    default=LOG_MAX_BYTES,
    show_default=True,
    help="Rotate --log-file when it would grow past this size.",
)
@click.option(
    "--log-backups",
    type=click.IntRange(min=0),
    default=LOG_BACKUPS,
    show_default=True,
    help="Rotated log files to keep (FILE.1 is the newest).",
)
@click.option(
    "--trace",
    is_flag=True,
    help="Log every hook call and dispatch stage to the ksi_host.trace logger (also: KSI_TRACE=1).",
)
@click.option(
    "--trace-namespace",
    "trace_namespaces",
    multiple=True,
    metavar="NS",
    help="Trace only events of this namespace (repeatable; implies --trace).",
)
@click.option(
    "--loop",
    "loop_choice",
    type=click.Choice(LOOP_CHOICES),
    envvar="KSI_LOOP",
    default="auto",
    show_default=True,
    help="The event loop [env KSI_LOOP]: uvloop where installed (auto), or asyncio's own.",
)
def run(
    socket_path: Path | None,
    config_file: Path | None,
    plugin_paths: tuple[str, ...],
    state_db: Path | None,
    log_level: str,
    log_file: Path | None,
    log_format: LogFormat,
    log_max_bytes: int,
    log_backups: int,
    trace: bool,
    trace_namespaces: tuple[str, ...],
    loop_choice: LoopChoice,
) -> None:
    """Serve events over the Unix socket with every plugin that can load, until SIGTERM."""
    from ksi_host._config import load_config
    from ksi_host._daemon import run_daemon
    from ksi_host._logging import configure_logging
    from ksi_host._loop import run_on
    from ksi_host._pipeline import DaemonRun
    from ksi_host._quarantine import Quarantine, StartMarker
    from ksi_host._trace import TraceSettings
    from ksi_host._workers import kill_workers

    tracing = TraceSettings.from_env()
    if trace or trace_namespaces:
        tracing = tracing.limited_to(trace_namespaces)
    with exit_on_error():
        configure_logging(
            level=log_level,
            log_file=log_file,
            log_format=log_format,
            max_bytes=log_max_bytes,
            backups=log_backups,
            trace=tracing.enabled,
        )
        config = load_config(config_file)
        _log_config_file(config_file)
        server = server_config(config, config_file, socket_path)
        if state_db is not None:
            state = {**(config.plugin_section("state") or {}), "path": str(state_db)}
            config = config.model_copy(update={"state": state})
        marker = StartMarker(
            server.socket_path.with_name(server.socket_path.name + ".starting"),
            Quarantine.from_env(),
        )
        daemon = DaemonRun(
            config,
            paths=plugin_paths,
            marker=marker,
            record=server.socket_path.with_name(server.socket_path.name + ".running"),
            trace=tracing,
        )
        code = run_on(
            loop_choice,
            lambda: run_daemon(
                daemon.start,
                daemon.stop,
                server,
                daemon.reload,
                stop_grace=config.host.stop_grace,
                emergency=(kill_workers,),
            ),
        )
    raise SystemExit(code)


def _log_config_file(config_file: Path | None) -> None:
    file = config_path(config_file)
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
@DAEMON_OPTIONS
@timeout_option(REQUEST_TIMEOUT, "the reply")
@click.option(
    "--websocket",
    "websocket_url",
    metavar="URL",
    default=None,
    help="Send over WebSocket to URL (e.g. ws://127.0.0.1:8765) instead of the Unix socket.",
)
@click.option(
    "--token",
    default=None,
    help="The WebSocket token (default: [websocket] token in the config, else the file the "
    "daemon wrote, $KSI_HOME/run/websocket.token).",
)
@click.pass_context
def send(
    ctx: click.Context,
    event: str,
    data: dict[str, Any],
    socket_path: Path | None,
    config_file: Path | None,
    timeout: float,
    websocket_url: str | None,
    token: str | None,
) -> None:
    """Send EVENT to the running daemon and print its answer as JSON.

    Finds the socket as ``ksi-host run`` does, so the same flags, environment and
    config reach the same daemon. Exits 1 on an error reply, and on a ``multiple``
    reply (several plugins answered) in which any answer is an error.
    """
    from ksi_host._client import request_sync
    from ksi_host._config import load_config
    from ksi_host._websocket.config import send_websocket

    with exit_on_error():
        config = load_config(config_file)
        if websocket_url is not None:
            answer = send_websocket(
                websocket_url, token, config.plugin_section("websocket"), event, data, timeout
            )
        else:
            server = server_config(config, config_file, socket_path)
            answer = request_sync(server.socket_path, event, data, timeout)
    click.echo(json.dumps(answer, indent=2, sort_keys=True))
    if _is_error(answer):
        ctx.exit(1)


def _is_error(answer: dict[str, Any]) -> bool:
    """An error reply, or a ``multiple`` one in which any plugin's answer is an error."""
    if answer.get("status") == "error":
        return True
    if answer.get("status") != "multiple":
        return False
    return any(
        "error" in entry
        or (isinstance(entry.get("result"), dict) and entry["result"].get("status") == "error")
        for entry in answer.get("results", ())
        if isinstance(entry, dict)
    )


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (DoctorReport).")
@PLUGIN_PATH_OPTION
@CONFIG_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DOCTOR_IMPORT_TIMEOUT,
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
    from ksi_host._doctor.diagnose import diagnose
    from ksi_host._doctor.report import render_text as render_doctor

    with exit_on_error("doctor" if as_json else None):
        report = diagnose(
            paths=plugin_paths,
            config_file=config_file,
            timeout=timeout,
            socket_path=doctor_socket(config_file),
        )
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
    from ksi_host._quarantine import Quarantine

    quarantine = Quarantine.from_env()
    removed = quarantine.reenable(name)
    if not removed:
        names = ", ".join(entry.name for entry in quarantine.entries()) or "none"
        click.echo(f"{name} is not quarantined (quarantined: {names})", err=True)
        raise SystemExit(1)
    click.echo(f"{name} will be loaded again by the next `ksi-host run`")
