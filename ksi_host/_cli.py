"""The ``ksi-host`` command line: each subcommand renders errors and picks the exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ksi_host import __version__
from ksi_host._client import DEFAULT_TIMEOUT, request_sync
from ksi_host._instance import default_socket_path
from ksi_host.errors import KsiError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ksi-host")
def cli() -> None:
    """Discover, check and run KSI plugins."""


def main() -> None:
    """Console-script entry point."""
    cli()


# --- daemon ---


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
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KSI_SOCKET",
    help="The daemon's socket [env KSI_SOCKET; default: ksi.sock in the run dir].",
)
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
    timeout: float,
) -> None:
    """Send EVENT to the running daemon and print its answer as JSON."""
    try:
        answer = request_sync(socket_path or default_socket_path(), event, data, timeout)
    except KsiError as exc:
        click.echo(exc.render(), err=True)
        ctx.exit(exc.exit_code)
    click.echo(json.dumps(answer, indent=2, sort_keys=True))
    if answer.get("status") == "error":
        ctx.exit(1)
