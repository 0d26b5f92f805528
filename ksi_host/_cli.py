"""The ``ksi-host`` command line: each subcommand renders errors and picks the exit code."""

from __future__ import annotations

import click

from ksi_host import __version__

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ksi-host")
def cli() -> None:
    """Discover, check and run KSI plugins."""


def main() -> None:
    """Console-script entry point."""
    cli()
