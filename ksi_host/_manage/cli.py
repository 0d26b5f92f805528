"""The plugin-set subcommands of ``ksi-host``: install, uninstall, lock, sync (imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ksi_host._cli_common import (
    DAEMON_OPTIONS,
    exit_on_error,
    server_config,
    timeout_option,
)
from ksi_host._defaults import DEFAULT_LOCK_FILE, RELOAD_TIMEOUT

if TYPE_CHECKING:
    from ksi_host._manage.commands import Change, PlanSource

__all__ = ["COMMANDS"]

FORCE_OPTION = click.option(
    "--force",
    is_flag=True,
    help="Do it even though a check says it breaks ksi-host or an installed plugin.",
)


def _plan_source(config_file: Path | None) -> PlanSource:
    from ksi_host._config import load_config
    from ksi_host._pipeline import plan_for

    return lambda: plan_for(load_config(config_file))


RELOAD_OPTION = click.option(
    "--reload",
    "reload_daemon",
    is_flag=True,
    help="Then reload the daemon running on the configured socket (none running: nothing to do).",
)

TIMEOUT_OPTION = timeout_option(RELOAD_TIMEOUT, "the daemon to apply the change")


def _report(change: Change) -> None:
    click.echo(change.render())


def _ask_daemon(
    event: str,
    data: dict[str, Any],
    *,
    config_file: Path | None,
    socket_path: Path | None,
    timeout: float = RELOAD_TIMEOUT,
    optional: bool = False,
) -> None:
    """Send ``plugin:reload``/``plugin:load``, print what changed; exit 1 on an error reply.

    ``optional``: no daemon running is fine (``--reload`` after an install).
    """
    from ksi_host._client import request_sync
    from ksi_host._config import load_config
    from ksi_host.errors import DaemonNotRunning

    with exit_on_error():
        server = server_config(load_config(config_file), config_file, socket_path)
        try:
            answer = request_sync(server.socket_path, event, data, timeout)
        except DaemonNotRunning:
            if not optional:
                raise
            click.echo(f"no daemon runs on {server.socket_path}: nothing to reload")
            return
    if answer.get("status") == "error":
        error = answer.get("error") or {}
        click.echo(f"error[{error.get('code')}]: {error.get('message')}", err=True)
        raise SystemExit(1)
    click.echo(_render_reload(answer))
    if answer.get("failed"):
        raise SystemExit(1)


def _reload_after_change(socket_path: Path | None, config_file: Path | None) -> None:
    """``--reload``: a running daemon adopts what was just installed or removed; none is fine."""
    _ask_daemon(
        "plugin:reload", {}, config_file=config_file, socket_path=socket_path, optional=True
    )


def _render_reload(answer: dict[str, Any]) -> str:
    lines = [
        f"{word}: {', '.join(answer.get(word) or [])}"
        for word in ("started", "stopped", "restarted")
        if answer.get(word)
    ]
    lines += [f"failed: {name}: {why}" for name, why in (answer.get("failed") or {}).items()]
    head = f"daemon {answer.get('status', 'reloaded')}:"
    return "\n  ".join([head, *lines]) if lines else f"{head} no plugin changed"


@click.command(
    "install",
    context_settings={"ignore_unknown_options": True},
    epilog="Any option not listed here goes to pip (--index-url, --find-links, --no-index, "
    "--pre, --upgrade, ...), e.g. `ksi-host install ksi-plugin-foo --no-index --find-links "
    "./wheels`.",
)
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED, metavar="SPEC...")
@FORCE_OPTION
@RELOAD_OPTION
@DAEMON_OPTIONS
def install_command(
    args: tuple[str, ...],
    force: bool,
    reload_daemon: bool,
    socket_path: Path | None,
    config_file: Path | None,
) -> None:
    """Install plugin distributions with pip into the environment that runs ksi-host.

    A dry run comes first: an install that would change ksi-host or one of its
    dependencies, break an installed plugin's dependency, or bring a plugin that
    needs another ksi-host version (in its Requires-Dist, its PluginMetadata or its
    ksi-plugin.toml: a staged copy is read) is refused, and nothing is changed.
    """
    from ksi_host._manage.commands import install

    with exit_on_error():
        _report(install(args, force=force, plan=_plan_source(config_file)))
    if reload_daemon:
        _reload_after_change(socket_path, config_file)


@click.command("uninstall")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@FORCE_OPTION
@RELOAD_OPTION
@DAEMON_OPTIONS
def uninstall_command(
    names: tuple[str, ...],
    force: bool,
    reload_daemon: bool,
    socket_path: Path | None,
    config_file: Path | None,
) -> None:
    """Uninstall plugin distributions, unless an installed plugin still needs one.

    ksi-host and the packages it needs are never removed.
    """
    from ksi_host._manage.commands import uninstall

    with exit_on_error():
        _report(uninstall(names, force=force, plan=_plan_source(config_file)))
    if reload_daemon:
        _reload_after_change(socket_path, config_file)


@click.command("reload")
@DAEMON_OPTIONS
@TIMEOUT_OPTION
def reload_command(socket_path: Path | None, config_file: Path | None, timeout: float) -> None:
    """Make the running daemon adopt the plugins installed now, keeping its clients.

    New plugins start, removed ones stop, upgraded ones (and what depends on them)
    stop and start again, in dependency order; the rest keep running. Sending the
    daemon SIGHUP does the same. Exits 1 when a plugin failed to start.
    """
    _ask_daemon(
        "plugin:reload", {}, config_file=config_file, socket_path=socket_path, timeout=timeout
    )


@click.command("load")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@DAEMON_OPTIONS
@TIMEOUT_OPTION
def load_command(
    path: Path, socket_path: Path | None, config_file: Path | None, timeout: float
) -> None:
    """Load a plugin file or folder into the running daemon, through its whole lifecycle.

    Its context and startup hooks run, it shows in plugin:list, and it stops with
    the others; a later reload keeps it. Sends plugin:load with the absolute PATH.
    """
    _ask_daemon(
        "plugin:load",
        {"path": str(path.resolve())},
        config_file=config_file,
        socket_path=socket_path,
        timeout=timeout,
    )


@click.command("lock")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path(DEFAULT_LOCK_FILE),
    show_default=True,
    help="The lock file to write; - prints it.",
)
def lock_command(output: Path) -> None:
    """Write the installed plugin set (distribution, exact version, plugins) as TOML.

    `ksi-host sync FILE` installs exactly that set elsewhere, or again after an upgrade.
    """
    from ksi_host._manage.environment import Environment
    from ksi_host._manage.lockfile import render_lock

    env = Environment.current()
    text = render_lock(env.plugin_dists(), env.host_version)
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(str(output), hint=exc.strerror or str(exc)) from None
    count = text.count("[[plugin]]")
    click.echo(f"wrote {output}: {count} plugin distribution{'s' * (count != 1)}")


@click.command(
    "sync",
    context_settings={"ignore_unknown_options": True},
    epilog="Options not listed here go to pip, e.g. --no-index --find-links ./wheels.",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pip_args", nargs=-1, type=click.UNPROCESSED, metavar="[PIP OPTIONS]")
@FORCE_OPTION
@RELOAD_OPTION
@DAEMON_OPTIONS
def sync_command(
    file: Path,
    pip_args: tuple[str, ...],
    force: bool,
    reload_daemon: bool,
    socket_path: Path | None,
    config_file: Path | None,
) -> None:
    """Install exactly the plugin set of the lock FILE into this environment.

    Missing plugin distributions are installed, ones at another version changed,
    ones the lock does not name removed; packages that are not plugin
    distributions are never changed. Checked first like install, and checked
    after: exits 1 unless the plugin set is then the lock's.
    """
    from ksi_host._manage.sync import sync

    with exit_on_error():
        synced = sync(file, pip_args, force=force, plan=_plan_source(config_file))
    _report(synced.change)
    for note in synced.notes:
        click.echo(note, err=True)
    if reload_daemon:
        _ask_daemon(
            "plugin:reload", {}, config_file=config_file, socket_path=socket_path, optional=True
        )


COMMANDS = (
    install_command,
    uninstall_command,
    lock_command,
    sync_command,
    reload_command,
    load_command,
)
