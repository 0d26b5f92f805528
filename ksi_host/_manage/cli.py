"""The plugin-set subcommands of ``ksi-host``: install, uninstall, lock, sync (imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ksi_host._cli_common import CONFIG_OPTION, exit_on_error

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


def _report(change: Change) -> None:
    click.echo(change.render())


@click.command(
    "install",
    context_settings={"ignore_unknown_options": True},
    epilog="Any option not listed here goes to pip (--index-url, --find-links, --no-index, "
    "--pre, --upgrade, ...), e.g. `ksi-host install ksi-plugin-foo --no-index --find-links "
    "./wheels`.",
)
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED, metavar="SPEC...")
@FORCE_OPTION
@CONFIG_OPTION
def install_command(args: tuple[str, ...], force: bool, config_file: Path | None) -> None:
    """Install plugin distributions with pip into the environment that runs ksi-host.

    A dry run comes first: an install that would change ksi-host or one of its
    dependencies, break an installed plugin's dependency, or bring a plugin that
    needs another ksi-host version is refused, and nothing is changed.
    """
    from ksi_host._manage.commands import install

    with exit_on_error():
        _report(install(args, force=force, plan=_plan_source(config_file)))


@click.command("uninstall")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@FORCE_OPTION
@CONFIG_OPTION
def uninstall_command(names: tuple[str, ...], force: bool, config_file: Path | None) -> None:
    """Uninstall plugin distributions, unless an installed plugin still needs one.

    ksi-host and the packages it needs are never removed.
    """
    from ksi_host._manage.commands import uninstall

    with exit_on_error():
        _report(uninstall(names, force=force, plan=_plan_source(config_file)))


COMMANDS = (install_command, uninstall_command)
