"""Shared fixtures; also turns pytest's "no tests ran" (exit 5) into a failure."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.dists import build_and_install, plugin_source, write_project


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --- installed fixture distributions (discover) ---


@pytest.fixture
def ksi_env(tmp_path: Path) -> dict[str, str]:
    """An environment for discover(): its own KSI_HOME, so the real ~/.ksi is never read."""
    home = tmp_path / "ksi-home"
    (home / "plugins").mkdir(parents=True)
    return {"HOME": str(tmp_path), "KSI_HOME": str(home)}


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for installed fixture distributions; their modules go after."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)
    yield site
    for name in set(sys.modules) - before:
        source = getattr(sys.modules[name], "__file__", None) or ""
        if name.startswith("ksi_plugin_file_") or source.startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.fixture(scope="session")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three fixture plugins built as real wheels and pip-installed into one target dir.

    alpha 1.0 and beta 2.0 (needs alpha>=1) load; gamma 0.3 needs 'storage', which nothing provides.
    """
    root = tmp_path_factory.mktemp("wheels")
    plugins = {
        "alpha": ("1.0", []),
        "beta": ("2.0", ["alpha>=1"]),
        "gamma": ("0.3", ["storage>=1"]),
    }
    projects = [
        write_project(
            root / "src",
            dist=f"ksi-fixture-{name}",
            version=version,
            package=f"ksi_fixture_{name}",
            source=plugin_source(name, dependencies=deps),
            entry_point=name,
        )
        for name, (version, deps) in plugins.items()
    ]
    target = root / "site"
    build_and_install(projects, root / "wheelhouse", target)
    return target
