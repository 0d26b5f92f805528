"""What every ``ksi-host`` subcommand shares: its options, declared once each, error rendering.

Light to import, as :mod:`ksi_host._cli` is: the stages load when a command runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from ksi_host._paths import KsiPaths
from ksi_host.errors import KsiError

if TYPE_CHECKING:
    from ksi_host._config import HostConfig
    from ksi_host._schema import Command
    from ksi_host._server_config import ServerConfig

__all__ = [
    "CONFIG_OPTION",
    "DAEMON_OPTIONS",
    "PLUGIN_PATH_OPTION",
    "RUN_OPTIONS",
    "config_path",
    "daemon_socket",
    "doctor_socket",
    "exit_on_error",
    "server_config",
    "timeout_option",
]

F = TypeVar("F", bound=Callable[..., Any])


class _Decorator(Protocol):
    """What ``click.option(...)`` returns: it adds its option to any command function."""

    def __call__(self, command: F, /) -> F: ...


def _options(*options: _Decorator) -> _Decorator:
    """One decorator for several options; ``--help`` lists them in this order."""

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def _file_option(*declarations: str, help: str, envvar: str | None = None) -> _Decorator:
    """An option that names a file (not a folder); ``None`` when not given."""
    return click.option(
        *declarations,
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=envvar,
        default=None,
        help=help,
    )


def timeout_option(default: float, waits_for: str) -> _Decorator:
    """``--timeout SECONDS``, a positive number: how long the command waits for ``waits_for``."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help=f"Seconds to wait for {waits_for}.",
    )


CONFIG_OPTION = _file_option(
    "--config",
    "config_file",
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

_SOCKET_OPTION = _file_option(
    "--socket",
    "socket_path",
    help="The daemon's socket (default: $KSI_SOCKET, else socket_path in the config's "
    "[server] section, else ksi.sock in the run dir).",
)

_STATE_DB_OPTION = _file_option(
    "--state-db",
    envvar="KSI_STATE_DB",
    help="The state plugin's SQLite file [env KSI_STATE_DB; default: path in the config's "
    "[state] section, else state.sqlite3 in the data dir].",
)

DAEMON_OPTIONS = _options(_SOCKET_OPTION, CONFIG_OPTION)
"""``--socket`` and ``--config``: the daemon a command talks to (see :func:`server_config`)."""

RUN_OPTIONS = _options(_SOCKET_OPTION, CONFIG_OPTION, PLUGIN_PATH_OPTION, _STATE_DB_OPTION)
"""What ``run`` builds its host from; ``config`` takes the same to explain each value."""


@contextmanager
def exit_on_error(json_for: Command | None = None) -> Iterator[None]:
    """Show a KsiError as what/where/hint and exit with its code; anything else is a bug.

    With ``json_for``, the error is also printed on stdout as that command's JSON
    report (``error`` set), so a script reading ``--json`` always gets JSON.
    """
    try:
        yield
    except KsiError as exc:
        if json_for is not None:
            from ksi_host._schema import error_report

            click.echo(error_report(json_for, exc).model_dump_json(indent=2))
        click.echo(exc.render(), err=True)
        raise SystemExit(exc.exit_code) from None


def daemon_socket(config: HostConfig, config_file: Path | None) -> Path | None:
    """The socket ``run`` would listen on, where a view asks the daemon; None if unknowable."""
    try:
        return server_config(config, config_file, None).socket_path
    except KsiError:
        return None


def doctor_socket(config_file: Path | None) -> Path | None:
    """The daemon's socket for doctor, which reports a config that does not load itself."""
    from ksi_host._config import load_config

    try:
        config = load_config(config_file)
    except KsiError:
        return None
    return daemon_socket(config, config_file)


def config_path(config_file: Path | None) -> Path:
    """The config file a command reads: ``--config``, else the default location."""
    return config_file or KsiPaths.from_env().config_file


def server_config(
    config: HostConfig, config_file: Path | None, socket_path: Path | None
) -> ServerConfig:
    """The same socket for ``run`` and ``send``: see :meth:`ServerConfig.from_section`."""
    from ksi_host._server_config import ServerConfig

    where = f"[server] section of {config_path(config_file)}"
    return ServerConfig.from_section(config.server, where=where, socket_path=socket_path)
