"""``ksi-host manifest``: write a plugin's ``ksi-plugin.toml`` from its code, or check one.

The command is click; the work (find the plugin, describe it, compare) is the
pipeline's own: ``describe`` imports it, :func:`ksi_host._describe.import_described`
compares a manifest with the code, so ``run``, ``doctor`` and this command give one
answer.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from ksi_host._cli_common import exit_on_error
from ksi_host.errors import ManifestError

if TYPE_CHECKING:
    from ksi_host._plan import Candidate

__all__ = ["manifest"]

_FOUND_NOTHING: Final = (
    "MODULE_OR_PATH names a plugin: a dotted module, 'module:attribute', "
    "a .py file or a package folder"
)


@click.command("manifest")
@click.argument("target", metavar="MODULE_OR_PATH", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the manifest to FILE (PACKAGE/ksi-plugin.toml) instead of stdout.",
)
@click.option("--lazy", is_flag=True, help='Write activation = "lazy" (default: "startup").')
@click.option(
    "--check",
    is_flag=True,
    help="Compare the plugin's ksi-plugin.toml with its code, field by field; without "
    "MODULE_OR_PATH, every installed plugin that ships one. Exits 1 on any difference.",
)
@click.option("--schema", is_flag=True, help="Print the JSON Schema of ksi-plugin.toml.")
def manifest(
    target: str | None, output: Path | None, lazy: bool, check: bool, schema: bool
) -> None:
    """Print the ksi-plugin.toml that restates MODULE_OR_PATH's code (imports the plugin).

    Put the file in the plugin's top-level package, so the distribution's RECORD lists
    it: the host then knows the plugin without importing it (docs/MANIFEST.md).
    """
    from ksi_host._manifest import PluginManifest

    if schema:
        import json

        click.echo(json.dumps(PluginManifest.model_json_schema(), indent=2))
        return
    if check and (output is not None or lazy):
        raise click.UsageError("--check takes neither -o nor --lazy")
    if not check and target is None:
        raise click.UsageError(f"missing MODULE_OR_PATH: {_FOUND_NOTHING}")
    with exit_on_error():
        if check:
            raise SystemExit(_check(target))
        assert target is not None
        text = _generate(target, "lazy" if lazy else "startup")
        if output is not None:
            _write(output, text)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}", err=True)


def _write(output: Path, text: str) -> None:
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ManifestError(
            what=f"cannot write the manifest: {exc.strerror or exc}",
            where=str(output),
            hint="choose a writable file in the plugin's top-level package",
        ) from None


def _generate(target: str, activation: str) -> str:
    from ksi_host._describe import describe
    from ksi_host._manifest import PluginManifest

    candidate = _candidate(target, manifest=None)
    outcome = describe([candidate], manifests=False)
    if not outcome.specs:
        reason = outcome.excluded[0].reason
        raise ManifestError(
            what=f"cannot describe {target}: {reason.message}",
            where=target,
            hint=reason.hint or "fix the plugin so `ksi-host plugins --plugin-path` loads it",
        )
    spec = outcome.specs[0]
    written = PluginManifest.of_code(
        spec.plugin,
        spec.metadata,
        spec.capabilities,
        activation="lazy" if activation == "lazy" else "startup",
    )
    return written.to_toml()


def _check(target: str | None) -> int:
    """Print one verdict per manifest checked; 1 if any disagrees or cannot be read."""
    from ksi_host._discover import discover

    if target is not None:
        candidates = [_candidate(target, manifest=_manifest_of(target))]
    else:
        env = {**os.environ, "KSI_PLUGIN_PATH": ""}
        found = discover(env=env, builtin_package=None)
        candidates = [c for c in found if c.manifest is not None]
        if not candidates:
            click.echo("no installed plugin ships a ksi-plugin.toml")
            return 0
    return max(_check_one(candidate) for candidate in candidates)


def _check_one(candidate: Candidate) -> int:
    from ksi_host._describe import describe, import_described
    from ksi_host._plan import Reason

    described = describe([candidate])
    if not described.specs:
        reason = described.excluded[0].reason
        click.echo(f"FAIL {candidate.name_hint} ({candidate.manifest}): {reason.message}")
        if reason.hint:
            click.echo(f"     hint: {reason.hint}")
        return 1
    outcome = import_described(described.specs[0])
    if isinstance(outcome, Reason):
        click.echo(f"FAIL {candidate.name_hint} ({candidate.manifest}):")
        for line in outcome.differences or outcome.message.splitlines():
            click.echo(f"     {line}")
        click.echo(f"     hint: {outcome.hint}")
        return 1
    click.echo(f"ok   {outcome.name} ({candidate.manifest})")
    return 0


def _candidate(target: str, *, manifest: Path | None) -> Candidate:
    """The candidate ``target`` names: an entry-point value, a module, or a file or folder."""
    from ksi_host._discover import explicit_candidates
    from ksi_host._plan import Candidate, Origin

    path = Path(target).expanduser()
    if ":" in target and not path.exists():
        module = target.partition(":")[0]
        name = module.rpartition(".")[2]
        found: tuple[Candidate, ...] = (
            Candidate(name_hint=name, origin=Origin("path", target), entry_point=target),
        )
    else:
        found = explicit_candidates(target)
    if len(found) != 1:
        raise ManifestError(
            what=f"{target} offers {len(found)} plugins, not one",
            where=target,
            hint=f"name one plugin: {_FOUND_NOTHING}",
        )
    return replace(found[0], manifest=manifest)


def _manifest_of(target: str) -> Path:
    """Where ``target``'s ``ksi-plugin.toml`` lives: its top-level package's folder."""
    from ksi_host._manifest import MANIFEST_FILE

    path = Path(target).expanduser()
    if path.exists():
        folder = path if path.is_dir() else path.parent
        if not (folder / "__init__.py").is_file():
            raise ManifestError(
                what=f"{target} is not in a package, so it has no {MANIFEST_FILE}",
                where=target,
                hint="a manifest lives in the plugin's top-level package (next to __init__.py)",
            )
        while (folder.parent / "__init__.py").is_file():
            folder = folder.parent
    else:
        top = target.partition(":")[0].partition(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            found = "no such module" if spec is None else "a module, not a package"
            raise ManifestError(
                what=f"cannot find the package {top!r} ({found})",
                where=target,
                hint=f"install the plugin, or give its package folder; {_FOUND_NOTHING}",
            )
        folder = Path(locations[0])
    file = folder / MANIFEST_FILE
    if not file.is_file():
        raise ManifestError(
            what=f"there is no {file}",
            where=target,
            hint=f"write one: ksi-host manifest {target} -o {file}",
        )
    return file
