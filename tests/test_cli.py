"""The command line: version, help, and ``python -m ksi_host``."""

from __future__ import annotations

import subprocess
import sys

from ksi_host import __version__
from ksi_host._cli import cli


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"ksi-host, version {__version__}\n"


def test_python_dash_m_is_the_same_command():
    done = subprocess.run(
        [sys.executable, "-m", "ksi_host", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ksi-host, version {__version__}\n"
