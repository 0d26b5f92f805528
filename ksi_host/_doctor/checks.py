"""Checks of the environment around the plugins, none of which imports plugin code.

- entry points of group ``ksi.plugins`` that two distributions both claim;
- one project installed more than once (stale or duplicate ``.dist-info``), where
  the first copy on ``sys.path`` hides the others' entry points;
- the config file parses and its ``[server]`` section validates; its plugin sections
  are returned for the worker, which checks them against each plugin's ``config_model``.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import importlib_metadata
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ksi_host._config import HostConfig, load_config
from ksi_host._discover import ENTRY_POINT_GROUP, env_plugin_folders
from ksi_host._doctor.fixes import PIP, edit
from ksi_host._doctor.report import Problem
from ksi_host._paths import KsiPaths
from ksi_host._server_config import ServerConfig
from ksi_host._trust import TRUST_SETTING, TrustPolicy, distrust
from ksi_host.errors import ConfigError, UntrustedConfig

__all__ = ["check_config", "check_distributions", "check_folders", "plugin_folders"]


def check_distributions(dists: Iterable[Any]) -> list[Problem]:
    """Entry points two projects claim, and projects installed twice, among plugin distributions."""
    copies: dict[str, list[importlib_metadata.Distribution]] = {}
    for dist in dists:
        if dist.entry_points.select(group=ENTRY_POINT_GROUP):
            copies.setdefault(canonicalize_name(dist.name or ""), []).append(dist)
    problems = [_duplicate(found) for found in copies.values() if len(found) > 1]
    claims: dict[str, list[importlib_metadata.Distribution]] = {}
    for found in copies.values():
        for ep in found[0].entry_points.select(group=ENTRY_POINT_GROUP):
            claims.setdefault(ep.name, []).append(found[0])
    problems += [_claimed_twice(name, found) for name, found in claims.items() if len(found) > 1]
    return problems


def _info_path(dist: importlib_metadata.Distribution) -> str:
    path = getattr(dist, "_path", None)
    return str(path) if path is not None else str(dist.locate_file(""))


def _duplicate(found: Sequence[importlib_metadata.Distribution]) -> Problem:
    """The newest copy is the one pip last installed; the others are leftovers to remove."""
    used = found[0]
    keep = max(found, key=_release)
    stale = [dist for dist in found if dist is not keep]
    copies = ", ".join(f"{d.version} at {_info_path(d)}" for d in found)
    return Problem(
        code="duplicate-dist-info",
        severity="warning",
        what=f"{used.name} is installed {len(found)} times; Python uses {used.version} "
        f"(the first on sys.path) and its entry points hide the others'",
        where=copies,
        fix="rm -rf " + " ".join(shlex.quote(_info_path(d)) for d in stale),
        note=f"keeps the newest, {keep.version}, and removes the stale metadata; if you "
        f"wanted another version, then run {PIP} install --force-reinstall "
        f'"{used.name}==<version>"',
    )


def _release(dist: importlib_metadata.Distribution) -> Version:
    """A copy's version for choosing the newest; one that is not PEP 440 is the oldest."""
    try:
        return Version(dist.version or "")
    except InvalidVersion:
        return Version("0")


def _claimed_twice(name: str, found: Sequence[importlib_metadata.Distribution]) -> Problem:
    owners = ", ".join(f"{d.name} {d.version}" for d in found)
    return Problem(
        code="entry-point-claimed-twice",
        severity="warning",
        what=f"entry point {name!r} of group {ENTRY_POINT_GROUP!r} is claimed by {owners}",
        where=", ".join(_info_path(d) for d in found),
        fix=f"{PIP} uninstall {found[-1].name}",
        note=f"keep the distribution you want; the first one found is {found[0].name}",
    )


def plugin_folders(paths: Sequence[str | Path], env: Mapping[str, str]) -> list[tuple[str, Path]]:
    """Every folder plugins are read from, with the setting that names it."""
    folders: list[tuple[str, Path]] = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            folders.append(("--plugin-path", path))
        elif path.suffix == ".py" and path.exists():
            folders.append(("--plugin-path", path.parent))
    folders += [("KSI_PLUGIN_PATH", folder) for folder in env_plugin_folders(env)]
    folders.append(("KSI_HOME/plugins", KsiPaths.from_env(env).plugins_dir))
    return folders


def check_folders(
    folders: Sequence[tuple[str, Path]], trust: TrustPolicy, reported: Collection[str]
) -> list[Problem]:
    """Plugin folders the trust rule refuses, though no plugin in them was refused yet.

    Such a folder holds no plugin today, but whoever can write it can add one that
    runs as this user; ``reported`` are the paths untrusted plugins already named.
    """
    problems: list[Problem] = []
    seen = set(reported)
    for setting, folder in folders:
        unsafe = distrust(folder, trust) if folder.exists() else None
        if unsafe is None or str(unsafe.real) in seen:
            continue
        seen.add(str(unsafe.real))
        problems.append(
            Problem(
                code="unsafe-plugin-folder",
                severity="warning",
                what=f"plugin folder from {setting}: {unsafe.problem}; a plugin put there "
                "would be refused",
                where=str(unsafe.real),
                fix=unsafe.fix,
                note=f"or, if you trust whoever can change it, add it to {TRUST_SETTING}",
            )
        )
    return problems


def _config_fix(exc: ConfigError) -> str:
    """Make an untrusted file safe, edit the file at the line, or unset the overrides at fault."""
    if isinstance(exc, UntrustedConfig):
        return exc.fix
    if exc.file is not None and exc.file.is_file():
        return edit(exc.file, exc.line)
    return _unset(exc.env_variables)


def _unset(variables: Sequence[str]) -> str:
    return f"unset {' '.join(variables)}" if variables else ""


def check_config(
    path: Path | None, env: Mapping[str, str]
) -> tuple[HostConfig | None, dict[str, Any], list[Problem]]:
    """The config as the host loads it, its plugin sections by canonical name, or why not.

    A missing default file is fine: every setting has a default.
    """
    try:
        config = load_config(path, env)
    except ConfigError as exc:
        problem = Problem(
            code="untrusted" if isinstance(exc, UntrustedConfig) else "config-invalid",
            severity="error",
            what=exc.what,
            where=exc.where or str(path or ""),
            fix=_config_fix(exc),
            note=f"{exc.hint}; the host will not start with this config",
        )
        return None, {}, [problem]
    sections = config.sections_by_key()
    return config, sections, _check_server(config, path or KsiPaths.from_env(env).config_file, env)


def _check_server(config: HostConfig, file: Path, env: Mapping[str, str]) -> list[Problem]:
    """The ``[server]`` section as ``run`` and ``send`` read it: a bad one stops both."""
    try:
        ServerConfig.from_section(config.server, where=f"[server] section of {file}", env=env)
    except ConfigError as exc:
        return [
            Problem(
                code="config-invalid",
                severity="error",
                what=exc.what,
                where=exc.where,
                fix=_unset(exc.env_variables) or edit(file),
                note=f"{exc.hint}; ksi-host run and send will not start with this config",
            )
        ]
    return []
