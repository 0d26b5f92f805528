"""The plugins an install would bring, described before pip changes anything.

A plugin may say it needs another ksi-host only in its code
(``PluginMetadata(dependencies=["ksi-host>=2"])``), which is not installed yet. So
pip installs the very artifacts its dry run chose, without their dependencies, into a
temporary folder (:func:`~ksi_host._manage.pip.stage`), and the plugins found there
are described as the host would describe them: from the ``ksi-plugin.toml`` a
distribution ships, else by importing them in doctor's isolated worker with that
folder first on ``sys.path`` (a plugin that crashes or hangs on import takes only the
worker down). The plan's own check (:func:`ksi_host._resolve.host_mismatch`) then
decides. The environment is never touched; the folder is removed afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ksi_host._describe import describe
from ksi_host._discover import distribution_candidates
from ksi_host._doctor.isolate import import_isolated
from ksi_host._doctor.outcome import outcome
from ksi_host._manage.checks import Problem, host_problem
from ksi_host._manage.environment import Environment
from ksi_host._manage.pip import Planned, stage
from ksi_host._plan import Candidate, PluginSpec
from ksi_host._resolve import host_mismatch

__all__ = ["plugin_problems"]


def plugin_problems(
    planned: Sequence[Planned], options: Sequence[str], env: Environment
) -> tuple[Problem, ...]:
    """A ``needs-host`` problem for each plugin of ``planned`` that needs another ksi-host.

    ``options`` are the user's pip options, so staging finds what the dry run found.
    ksi-host and what it needs are not staged: a change to them is refused anyway.
    """
    protected = env.protected()
    wanted = [p for p in planned if p.key not in protected]
    if not wanted:
        return ()
    with tempfile.TemporaryDirectory(prefix="ksi-host-stage-") as folder:
        stage(wanted, options, Path(folder))
        specs = _described(distribution_candidates(Path(folder)), Path(folder))
    problems = []
    for spec in specs:
        mismatch = host_mismatch(spec, env.host_version)
        dist, version = spec.origin.distribution, spec.origin.dist_version
        if mismatch is None or dist is None or version is None:
            continue
        subject = f"plugin {spec.name} ({dist} {version})"
        problems.append(host_problem(replace(mismatch, subject=subject), dist, version))
    return tuple(problems)


def _described(candidates: Sequence[Candidate], folder: Path) -> list[PluginSpec]:
    """Every plugin's spec (an excluded one's too, when it got that far), as the host reads it."""
    with_manifest = [c for c in candidates if c.manifest is not None]
    described = describe(with_manifest)
    specs = [*described.specs, *(e.spec for e in described.excluded if e.spec is not None)]
    to_import = [c for c in candidates if c.manifest is None]
    if to_import:
        results = import_isolated(to_import, disabled={}, sections={}, sys_path=[str(folder)])
        for found in map(outcome, to_import, results):
            spec = found.spec or (found.exclusion.spec if found.exclusion else None)
            if spec is not None:
                specs.append(spec)
    return specs
