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
from pathlib import Path
from typing import Final

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from pydantic import BaseModel, ConfigDict, ValidationError

from ksi_host._manage.environment import requirements_of
from ksi_host.errors import PipFailed

__all__ = ["Planned", "dry_run", "pip_command", "run_pip", "split_args", "stage"]

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


class _VcsInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    vcs: str
    commit_id: str


class _ArchiveInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hashes: dict[str, str] = {}


class _DownloadInfo(BaseModel):
    """Where pip got a distribution (PEP 610's ``direct_url.json`` format)."""

    model_config = ConfigDict(extra="ignore")
    url: str
    subdirectory: str | None = None
    vcs_info: _VcsInfo | None = None
    archive_info: _ArchiveInfo | None = None

    def reference(self, name: str) -> str:
        """A PEP 508 direct reference to exactly this artifact.

        A VCS one is pinned to its commit, an archive to its hash (pip checks it, so the
        staged files are the ones the dry run vetted, ``--require-hashes`` or not).
        """
        url = self.url
        if self.vcs_info is not None:
            url = f"{self.vcs_info.vcs}+{url}@{self.vcs_info.commit_id}"
        fragment = []
        if self.archive_info is not None and "sha256" in self.archive_info.hashes:
            fragment.append(f"sha256={self.archive_info.hashes['sha256']}")
        if self.subdirectory:
            fragment.append(f"subdirectory={self.subdirectory}")
        return f"{name} @ {url}" + (f"#{'&'.join(fragment)}" if fragment else "")


class _ReportItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: _ReportMetadata
    download_info: _DownloadInfo
    requested: bool = False


class _Report(BaseModel):
    """The part of pip's installation report (``--report``, version 1) we read."""

    model_config = ConfigDict(extra="ignore")
    install: list[_ReportItem]


@dataclass(frozen=True)
class Planned:
    """One distribution pip would install (or reinstall, or change to this version).

    ``reference`` is a direct reference to the very artifact pip chose, so it can be
    installed elsewhere (see :func:`stage`) without resolving again.
    """

    name: str
    version: str
    requires: tuple[Requirement, ...]
    requested: bool
    reference: str

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
            reference=item.download_info.reference(item.metadata.name),
        )
        for item in report.install
    )


def stage(planned: Sequence[Planned], options: Sequence[str], folder: Path) -> None:
    """Install exactly ``planned`` into ``folder`` alone (``--target``), not into the environment.

    ``options`` are the user's pip options (an index, ``--find-links``, ...); those that
    say where or how to install are dropped (see :data:`_PLACEMENT_OPTIONS`).
    """
    run_pip(
        "install",
        "--quiet",
        "--no-deps",
        "--no-compile",
        "--target",
        str(folder),
        *_without_placement(options),
        *(p.reference for p in planned),
        quiet=True,
    )


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """A ``pip install`` command line as its options (with their values) and its specifiers."""
    options: list[str] = []
    specs: list[str] = []
    takes_value = False
    for arg in args:
        if arg.startswith("-"):
            options.append(arg)
            takes_value = "=" not in arg and arg in _VALUE_OPTIONS
        elif takes_value:
            options.append(arg)
            takes_value = False
        else:
            specs.append(arg)
    return options, specs


def _without_placement(options: Sequence[str]) -> list[str]:
    """``options`` less those that say where or what to install (and their values)."""
    kept: list[str] = []
    skipping = False
    for option in options:
        name = option.partition("=")[0]
        if skipping:
            skipping = False
        elif name in _PLACEMENT_OPTIONS:
            skipping = "=" not in option and name in _VALUE_OPTIONS
        else:
            kept.append(option)
    return kept


_PLACEMENT_OPTIONS: Final = frozenset(
    {
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--user",
        "-U",
        "--upgrade",
        "--upgrade-strategy",
        "--force-reinstall",
        "-I",
        "--ignore-installed",
        "--no-deps",
        "-e",
        "--editable",
        "-r",
        "--requirement",
        "--src",
        "--report",
        "--dry-run",
        "--compile",
        "--require-hashes",
    }
)
"""Options of ``pip install`` that say where or what to install: :func:`stage` decides those."""

_VALUE_OPTIONS: Final = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-c",
        "--constraint",
        "-r",
        "--requirement",
        "-e",
        "--editable",
        "--src",
        "--report",
        "--upgrade-strategy",
        "--only-binary",
        "--no-binary",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--cache-dir",
        "--proxy",
        "--target",
        "-t",
        "--prefix",
        "--root",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--progress-bar",
        "--config-settings",
        "-C",
        "--global-option",
        "--timeout",
        "--retries",
        "--exists-action",
        "--keyring-provider",
        "--use-feature",
        "--use-deprecated",
        "--root-user-action",
        "--log",
        "--log-file",
        "--python",
    }
)
"""Options of ``pip install`` whose value is the next argument (unless given as ``--opt=value``)."""
