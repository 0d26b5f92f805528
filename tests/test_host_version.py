"""The host's own version is a dependency like any other: declared, or in Requires-Dist."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from strategies import make_spec

from ksi_host import __version__
from ksi_host._pipeline import build_plan
from ksi_host._plan import Origin
from ksi_host._resolve import resolve
from tests.dists import install_dist, plugin_source


def test_a_declared_requirement_on_a_newer_host_excludes_the_plugin() -> None:
    plan = resolve(
        [
            make_spec("future", dependencies=["ksi-host>=2"]),
            make_spec("fits", dependencies=[f"ksi_host>={__version__}"]),
            make_spec("needs_future", dependencies=["future"]),
        ]
    )
    assert [spec.name for spec in plan.order] == ["fits"]
    reasons = {e.name: e.reason for e in plan.excluded}
    reason = reasons["future"]
    assert reason.code == "host-version"
    assert reason.message == (
        f"future needs ksi-host>=2 (its dependencies), but this is ksi-host {__version__}"
    )
    assert "python -m pip install --upgrade 'ksi-host>=2'" in reason.hint
    assert reason.requirement == "ksi-host>=2"
    assert reasons["needs_future"].root is reason


def test_an_installed_prerelease_of_the_host_is_installed() -> None:
    plan = resolve([make_spec("p", dependencies=["ksi-host>=1.0"])], host_version="2.0rc1")
    assert [spec.name for spec in plan.order] == ["p"]


def test_the_distributions_requires_dist_counts_too() -> None:
    spec = make_spec("packaged")
    origin = Origin(
        "entry-point", "pkg:plugin", "ksi-packaged", "1.0", "packaged", "ksi-host>=2; extra == ''"
    )
    plan = resolve([replace(spec, origin=origin)])
    [exclusion] = plan.excluded
    assert exclusion.reason.code == "host-version"
    assert "(ksi-packaged's Requires-Dist)" in exclusion.reason.message


@pytest.mark.usefixtures("site_dir")
def test_discovery_reads_requires_dist_from_the_installed_metadata(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    install_dist(
        site_dir,
        dist="ksi-hv-new",
        version="1.0",
        files={"hv_new.py": plugin_source("hv_new")},
        entry_points={"hv_new": "hv_new"},
        requires=["pluggy>=1", "ksi-host >=2, <3"],
    )
    plan = build_plan(env=ksi_env, builtin_package=None)
    [exclusion] = [e for e in plan.excluded if e.name == "hv_new"]
    assert exclusion.reason.code == "host-version"
    assert exclusion.reason.requirement == "ksi-host >=2, <3"
