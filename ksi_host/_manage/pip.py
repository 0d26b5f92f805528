"""Run pip with the interpreter that runs ksi-host, and read its dry-run report.

Everything pip is told comes from the user's command line, so an index, a folder of
wheels (``--no-index --find-links DIR``) or pip's own config work as with pip itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from pydantic import BaseModel, ConfigDict, ValidationError

from ksi_host._manage.environment import requirements_of
from ksi_host.errors import PipFailed

__all__ = ["Planned", "dry_run", "pip_command", "run_pip"]

_PIP: Final = ("-m", "pip", "--disable-pip-version-check")


def pip_command(*args: str) -> list[str]:
    """``python -m pip ARGS`` with the interpreter running ksi-host: the host's environment."""
    return [sys.executable, *_PIP, *args]


def run_pip(*args: str, quiet: bool = False) -> str:
    """Run pip, its output to ours (or captured when ``quiet``); raise PipFailed on failure."""
    command = pip_command(*args)
    if quiet:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        output = done.stdout + done.stderr
    else:
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
        output = done.stderr
        sys.stderr.write(output)
    if done.returncode != 0:
        raise PipFailed(command=command, returncode=done.returncode, output=output)
    return done.stdout or ""


class _ReportMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    version: str
    requires_dist: list[str] = []


class _ReportItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: _ReportMetadata
    requested: bool = False


class _Report(BaseModel):
    """The part of pip's installation report (``--report``, version 1) we read."""

    model_config = ConfigDict(extra="ignore")
    install: list[_ReportItem]


@dataclass(frozen=True)
class Planned:
    """One distribution pip would install (or reinstall, or change to this version)."""

    name: str
    version: str
    requires: tuple[Requirement, ...]
    requested: bool

    @property
    def key(self) -> NormalizedName:
        return canonicalize_name(self.name)


def dry_run(args: Sequence[str]) -> tuple[Planned, ...]:
    """What ``pip install ARGS`` would install, changing nothing."""
    out = run_pip("install", "--dry-run", "--quiet", "--report", "-", *args, quiet=True)
    try:
        report = _Report.model_validate(json.loads(out))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise PipFailed(
            command=pip_command("install", "--dry-run", "--report", "-", *args),
            returncode=0,
            output=f"its report is not what ksi-host can read ({exc}); pip 22.2 or newer "
            f"is needed:\n{out[:2000]}",
        ) from None
    return tuple(
        Planned(
            name=item.metadata.name,
            version=item.metadata.version,
            requires=requirements_of(item.metadata.requires_dist),
            requested=item.requested,
        )
        for item in report.install
    )
