"""The ``ksi-host`` command line: each subcommand renders errors and picks the exit code."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ksi_host import __version__
from ksi_host._doctor import diagnose
from ksi_host._doctor_isolate import DEFAULT_TIMEOUT
from ksi_host._doctor_report import render_text as render_doctor
from ksi_host._pipeline import build_plan
from ksi_host._plans_report import plan_report, render_text
from ksi_host.errors import KsiError

__all__ = ["cli", "main"]


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
def plugins(as_json: bool, plugin_paths: tuple[str, ...], verbose: bool) -> None:
    """Show which plugins will load, in which order, and why the others will not.

    Exits 1 when a plugin found cannot load; disabled and shadowed ones do not count.
    """
    try:
        report = plan_report(build_plan(paths=plugin_paths))
    except KsiError as exc:
        click.echo(exc.render(), err=True)
        raise SystemExit(exc.exit_code) from None
    click.echo(
        report.model_dump_json(indent=2) if as_json else render_text(report, tracebacks=verbose)
    )
    raise SystemExit(0 if report.ok else 1)


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (DoctorReport).")
@click.option(
    "--plugin-path",
    "plugin_paths",
    multiple=True,
    metavar="PATH",
    help="A plugin file, folder or dotted module to check first (repeatable).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The TOML config file to check (default: $KSI_CONFIG, else the user's config dir).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
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
    try:
        report = diagnose(paths=plugin_paths, config_file=config_file, timeout=timeout)
    except KsiError as exc:
        click.echo(exc.render(), err=True)
        raise SystemExit(exc.exit_code) from None
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        color = False if os.environ.get("NO_COLOR") else None
        click.echo(render_doctor(report, tracebacks=verbose), color=color)
    raise SystemExit(report.exit_code(strict=strict))
