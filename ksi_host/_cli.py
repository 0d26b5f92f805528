"""The ``ksi-host`` command line: each subcommand renders errors and picks the exit code."""

from __future__ import annotations

from pathlib import Path

import click

from ksi_host import __version__
from ksi_host._config import load_config
from ksi_host._pipeline import plan_for
from ksi_host._plans_report import plan_report, render_text
from ksi_host.errors import KsiError

__all__ = ["cli", "main"]

CONFIG_OPTION = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The TOML config file (default: $KSI_CONFIG, else the user's config dir).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ksi-host")
def cli() -> None:
    """Discover, check and run KSI plugins."""


def main() -> None:
    """Console-script entry point."""
    cli()


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (PlanReport).")
@click.option(
    "--plugin-path",
    "plugin_paths",
    multiple=True,
    metavar="PATH",
    help="A plugin file, folder or dotted module to load first (repeatable).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of each failed import.")
@CONFIG_OPTION
def plugins(
    as_json: bool, plugin_paths: tuple[str, ...], verbose: bool, config_file: Path | None
) -> None:
    """Show which plugins will load, in which order, and why the others will not.

    Exits 1 when a plugin found cannot load; disabled and shadowed ones do not count.
    """
    try:
        report = plan_report(plan_for(load_config(config_file), paths=plugin_paths))
    except KsiError as exc:
        click.echo(exc.render(), err=True)
        raise SystemExit(exc.exit_code) from None
    click.echo(
        report.model_dump_json(indent=2) if as_json else render_text(report, tracebacks=verbose)
    )
    raise SystemExit(0 if report.ok else 1)
