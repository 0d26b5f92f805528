"""Build real plugin distributions for tests: plugin sources, ``.dist-info`` folders, wheels."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from ksi_host._manifest import PluginManifest


def plugin_source(
    name: str,
    *,
    version: str | None = None,
    dependencies: Sequence[str] = (),
    after: Sequence[str] = (),
    services: Sequence[str] = (),
    namespaces: Sequence[str] = (),
) -> str:
    """A module whose ``plugin`` is a minimal, valid KSI plugin with the given metadata."""
    return textwrap.dedent(
        f"""\
        from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


        class FixturePlugin(BasePlugin):
            @hookimpl
            def ksi_handle_event(self, event_name, data, context):
                return None


        plugin = FixturePlugin(
            PluginMetadata(
                name={name!r},
                version={version!r},
                dependencies={list(dependencies)!r},
                after_dependencies={list(after)!r},
            ),
            PluginCapabilities(
                provides_services={list(services)!r}, event_namespaces={list(namespaces)!r}
            ),
        )
        """
    )


def _files_text(root: Path, files: Mapping[str, str]) -> list[Path]:
    written = []
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def _entry_points_text(groups: Mapping[str, Mapping[str, str]]) -> str:
    lines = [
        line
        for group, entry_points in groups.items()
        for line in (f"[{group}]", *(f"{name} = {value}" for name, value in entry_points.items()))
    ]
    return "\n".join(lines) + "\n"


def install_dist(
    site: Path,
    *,
    dist: str,
    version: str,
    files: Mapping[str, str],
    entry_points: Mapping[str, str],
    info_name: str | None = None,
    requires: Sequence[str] = (),
    other_entry_points: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write an installed distribution into ``site`` as pip would: files plus a ``.dist-info``.

    ``info_name`` overrides the ``.dist-info`` folder's project part (to test spellings);
    ``requires`` become its ``Requires-Dist`` headers; ``other_entry_points`` adds groups
    besides ``ksi.plugins`` (``{"pydantic": {"name": "module:object"}}``).
    """
    written = _files_text(site, files)
    stem = info_name or str(canonicalize_name(dist)).replace("-", "_")
    info = site / f"{stem}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = {
        "METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        "entry_points.txt": _entry_points_text(
            {"ksi.plugins": entry_points, **(other_entry_points or {})}
        ),
        "INSTALLER": "ksi-tests\n",
    }
    written += _files_text(info, meta)
    record = [f"{path.relative_to(site).as_posix()},{_record_hash(path)}" for path in written]
    record.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return info


def _record_hash(path: Path) -> str:
    """A RECORD line's hash and size, as pip writes them."""
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest},{len(data)}"


def write_project(
    root: Path,
    *,
    dist: str,
    version: str,
    package: str,
    source: str,
    entry_point: str | None,
    requires: Sequence[str] = (),
    files: Mapping[str, str] | None = None,
) -> Path:
    """A buildable hatchling project whose package is the plugin and whose entry point names it.

    ``entry_point=None`` makes a plain library; ``requires`` become its ``Requires-Dist``;
    ``files`` are more files of the project (``{"pkg/ksi-plugin.toml": text}``).
    """
    project = root / f"{dist}-{version}"
    plugins = f'[project.entry-points."ksi.plugins"]\n{entry_point} = "{package}"\n'
    pyproject = f"""\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "{version}"
dependencies = {json.dumps(list(requires))}

{plugins if entry_point else ""}
[tool.hatch.build.targets.wheel]
packages = ["{package}"]
"""
    sources = {"pyproject.toml": pyproject, f"{package}/__init__.py": source}
    _files_text(project, {**sources, **(files or {})})
    return project


def build_wheels(projects: Sequence[Path], wheelhouse: Path) -> list[Path]:
    """``pip wheel`` the projects into ``wheelhouse`` (no dependencies, no build isolation).

    One pip run per version of a project name: pip refuses two versions in one run.
    """
    pip = ["-m", "pip", "--disable-pip-version-check", "-q"]
    wheel = ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheelhouse)]
    rounds: list[list[Path]] = []
    for project in projects:
        name = project.name.rpartition("-")[0]
        free = next((r for r in rounds if all(p.name.rpartition("-")[0] != name for p in r)), None)
        if free is None:
            rounds.append([project])
        else:
            free.append(project)
    for batch in rounds:
        subprocess.run([sys.executable, *pip, *wheel, *map(str, batch)], check=True)
    return sorted(wheelhouse.glob("*.whl"))


def build_and_install(
    projects: Sequence[Path], wheelhouse: Path, python: Path, env: Mapping[str, str]
) -> list[Path]:
    """``pip wheel`` the projects, then ``pip install`` the wheels into ``python``'s venv."""
    wheels = build_wheels(projects, wheelhouse)
    pip = ["-m", "pip", "--disable-pip-version-check", "-q"]
    install = ["install", "--no-deps", "--no-index"]
    subprocess.run([str(python), *pip, *install, *map(str, wheels)], check=True, env=env)
    return wheels


# --- plugins that record their import (manifests, lazy activation) ---

RECORDING_PLUGIN = """\
import os, pathlib
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl

with pathlib.Path(os.environ["KSI_TEST_IMPORTS"]).open("a") as log:
    log.write({name!r} + "\\n")


class Recorded(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {{"from": {name!r}, "event": event_name}}
{startup}

plugin = Recorded(
    PluginMetadata(
        name={name!r},
        version="1.0",
        description="records its import",
        dependencies={dependencies!r},
        after_dependencies={after!r},
    ),
    PluginCapabilities(event_namespaces={namespaces!r}),
)
"""

FAILING_STARTUP = """
    @hookimpl
    def ksi_startup(self):
        raise OSError("port taken")
"""


def recording_source(
    name: str,
    *,
    namespaces: tuple[str, ...] | None = None,
    dependencies: tuple[str, ...] = (),
    after: tuple[str, ...] = (),
    failing_startup: bool = False,
) -> str:
    """A plugin that appends its name to $KSI_TEST_IMPORTS when its module is imported."""
    return RECORDING_PLUGIN.format(
        name=name,
        namespaces=list((name,) if namespaces is None else namespaces),
        dependencies=list(dependencies),
        after=list(after),
        startup=FAILING_STARTUP if failing_startup else "",
    )


def recorded_manifest(name: str, **changes: object) -> str:
    fields: dict[str, object] = {
        "name": name,
        "version": "1.0",
        "description": "records its import",
        "event_namespaces": (name,),
        "hooks": ("ksi_handle_event",),
        "activation": "lazy",
    }
    return PluginManifest(**{**fields, **changes}).to_toml()  # type: ignore[arg-type]


def install_recorded(
    site: Path,
    name: str,
    *,
    manifest: str | None = None,
    recorded: bool = True,
    source: str | None = None,
) -> Path:
    """A distribution whose package ``{name}_pkg`` records its import; with a manifest if given."""
    package = f"{name}_pkg"
    files = {f"{package}/__init__.py": source or recording_source(name)}
    info = install_dist(
        site,
        dist=f"ksi-{name}",
        version="1.0",
        files={**files, **({f"{package}/ksi-plugin.toml": manifest} if manifest else {})},
        entry_points={name: package},
    )
    if manifest and not recorded:
        record = info / "RECORD"
        lines = record.read_text().splitlines()
        record.write_text("\n".join(x for x in lines if "ksi-plugin.toml" not in x) + "\n")
    return info
