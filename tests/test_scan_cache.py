"""The entry-point scan is kept while sys.path is unchanged, and never past an install."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import importlib_metadata
import pytest
from click.testing import CliRunner
from pydantic.plugin import _loader

from ksi_host import _scan_cache
from ksi_host._cli import cli
from ksi_host._discover import discover
from ksi_host._paths import KsiPaths
from ksi_host._scan_cache import CACHE_FILE
from tests.conftest import subprocess_env
from tests.dists import install_dist, plugin_source


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry per real scan of the installed metadata (the real scan still runs)."""
    seen: list[str] = []
    real = importlib_metadata.entry_points

    def counted(**params: str) -> importlib_metadata.EntryPoints:
        seen.append(params.get("group", "every group"))
        return real(**params)

    monkeypatch.setattr(importlib_metadata, "entry_points", counted)  # _discover imports it to scan
    return seen


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders changed a moment ago count as settled (the tests' folders all just changed).

    A test then waits a file-time tick before it changes a folder again, as a real change
    comes ``SETTLE_SECONDS`` after the one a kept scan saw.
    """
    monkeypatch.setattr(_scan_cache, "SETTLE_SECONDS", 0.0)


def _next_tick() -> None:
    time.sleep(0.05)


def _install(site: Path, name: str, manifest: bool = False) -> Path:
    package = f"{name}_pkg"
    files = {f"{package}/__init__.py": plugin_source(name)}
    if manifest:
        files[f"{package}/ksi-plugin.toml"] = f'name = "{name}"\nhooks = ["ksi_handle_event"]\n'
    return install_dist(
        site, dist=f"ksi-{name}", version="1.0", files=files, entry_points={name: package}
    )


def _found(env: dict[str, str]) -> list[tuple[str, str | None, Path | None]]:
    return [
        (c.name_hint, c.origin.dist_version, c.manifest)
        for c in discover(env=env, builtin_package=None)
        if c.origin.kind == "entry-point"
    ]


def test_an_unchanged_sys_path_is_not_scanned_twice(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None
) -> None:
    info = _install(site_dir, "sc_one", manifest=True)
    first = _found(ksi_env)
    assert ("sc_one", "1.0", site_dir / "sc_one_pkg" / "ksi-plugin.toml") in first
    assert _found(ksi_env) == first
    assert scans == ["every group"]
    kept = discover(env=ksi_env, builtin_package=None)  # the kept scan keeps where each dist is
    assert [c.dist_info for c in kept if c.name_hint == "sc_one"] == [str(info)]


@pytest.mark.parametrize("change", ["install", "uninstall", "same-mtime"])
def test_an_install_or_uninstall_is_seen_at_once(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None, change: str
) -> None:
    info = _install(site_dir, "sc_old")
    before = site_dir.stat()
    assert "sc_old" in [name for name, _, _ in _found(ksi_env)]
    _next_tick()
    if change == "uninstall":
        shutil.rmtree(info)
    else:
        _install(site_dir, "sc_new")
    if change == "same-mtime":  # an archive unpacked with its old times: ctime still moves
        os.utime(site_dir, ns=(before.st_atime_ns, before.st_mtime_ns))
        importlib.invalidate_caches()  # as a new process: importlib's own listing is by mtime
    names = [name for name, _, _ in _found(ksi_env)]
    assert ("sc_old" in names) is (change != "uninstall")
    assert ("sc_new" in names) is (change != "uninstall")
    assert len(scans) == 2


def test_a_kept_manifest_that_is_gone_means_a_scan(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None
) -> None:
    _install(site_dir, "sc_man", manifest=True)
    assert _found(ksi_env)[0][2] is not None
    _next_tick()
    (site_dir / "sc_man_pkg" / "ksi-plugin.toml").unlink()
    assert [m for name, _, m in _found(ksi_env) if name == "sc_man"] == [None]
    assert len(scans) == 2


def test_a_folder_that_just_changed_is_not_trusted_to_date_a_scan(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str]
) -> None:
    _install(site_dir, "sc_hot")
    for _ in range(2):
        assert "sc_hot" in [name for name, _, _ in _found(ksi_env)]
    assert len(scans) == 2
    assert not (KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE).exists()


class _Elsewhere:
    """A finder that offers distributions from somewhere no folder on sys.path dates."""

    @staticmethod
    def find_distributions(*args: object, **kwargs: object) -> Iterator[object]:
        return iter(())

    @staticmethod
    def find_spec(*args: object, **kwargs: object) -> None:
        return None


def test_distributions_from_another_finder_are_never_kept(
    site_dir: Path,
    ksi_env: dict[str, str],
    scans: list[str],
    settled: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(site_dir, "sc_other")
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, _Elsewhere()])
    for _ in range(2):
        _found(ksi_env)
    assert len(scans) == 2


def test_a_damaged_cache_is_ignored(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None
) -> None:
    _install(site_dir, "sc_dmg")
    expected = _found(ksi_env)
    cache = KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE
    for damage in ("{not json", '{"key": 1, "rows": []}', "[]"):
        cache.write_text(damage)
        assert _found(ksi_env) == expected
    assert len(scans) == 4


def test_entry_points_edited_in_place_are_seen(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None
) -> None:
    """``setup.py develop`` rewrites entry_points.txt in its folder: no folder changes."""
    info = _install(site_dir, "sc_edit")
    assert "sc_edit" in [name for name, _, _ in _found(ksi_env)]
    _next_tick()
    (info / "entry_points.txt").write_text("[ksi.plugins]\nsc_renamed = sc_edit_pkg\n")
    names = [name for name, _, _ in _found(ksi_env)]
    assert "sc_renamed" in names
    assert "sc_edit" not in names
    assert len(scans) == 2


def test_entry_points_created_in_place_are_seen(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None
) -> None:
    """A distribution's folder gains ``entry_points.txt``: no ``sys.path`` folder changes."""
    info = _install(site_dir, "sc_late")
    (info / "entry_points.txt").unlink()
    _next_tick()
    assert "sc_late" not in [name for name, _, _ in _found(ksi_env)]
    _next_tick()
    (info / "entry_points.txt").write_text("[ksi.plugins]\nsc_late = sc_late_pkg\n")
    assert "sc_late" in [name for name, _, _ in _found(ksi_env)]
    assert len(scans) == 2


def _plant(cache: Path) -> None:
    """Add an entry point no distribution declares, keeping the cache's key and its mode."""
    kept = json.loads(cache.read_text())
    row = dict(kept["rows"][0], name="sc_planted", value="os", entry_point="sc_planted")
    kept["rows"].append(row)
    cache.write_text(json.dumps(kept))


@pytest.mark.parametrize("exposure", [None, "file-writable", "folder-writable", "other-owner"])
def test_a_cache_another_user_can_change_is_ignored(
    site_dir: Path,
    ksi_env: dict[str, str],
    scans: list[str],
    settled: None,
    caplog: pytest.LogCaptureFixture,
    exposure: str | None,
) -> None:
    """Whoever can write the cache chooses the entry points: it must be as safe as a plugin folder.

    Unexposed, the planted row is served (so the cache really is read); exposed, the scan runs
    again, finds only what is installed, and the warning names the fix.
    """
    _install(site_dir, "sc_real")
    _found(ksi_env)
    cache = KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE
    assert cache.stat().st_mode & 0o777 == 0o600
    _plant(cache)
    if exposure == "file-writable":
        cache.chmod(0o622)
    elif exposure == "folder-writable":
        cache.parent.chmod(0o777)
    elif exposure == "other-owner":
        os.chown(cache, 65534, 65534)
    names = [name for name, _, _ in _found(ksi_env)]
    assert "sc_real" in names
    assert ("sc_planted" in names) is (exposure is None)
    assert len(scans) == (1 if exposure is None else 2)
    warned = [r.getMessage() for r in caplog.records if r.name == "ksi_host.cache"]
    if exposure is None:
        assert warned == []
    else:
        assert warned
        assert str(cache.parent if exposure == "folder-writable" else cache) in warned[0]
        assert "chmod go-w" in warned[0] or "chown" in warned[0]


def test_the_scan_records_whether_any_distribution_declares_a_pydantic_plugin(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None
) -> None:
    """Valid only with the scan it came from: unknown before one, and again after an install."""
    cache = _scan_cache.ScanCache.of(ksi_env)
    assert cache.pydantic_plugins() is None
    _install(site_dir, "sc_plain")
    _found(ksi_env)
    assert _scan_cache.ScanCache.of(ksi_env).pydantic_plugins() is False
    _next_tick()
    install_dist(
        site_dir,
        dist="sc-pydantic-plugin",
        version="1.0",
        files={"sc_pyd_plugin.py": "plugin = object()\n"},
        entry_points={},
        other_entry_points={"pydantic": {"sc_pyd": "sc_pyd_plugin:plugin"}},
    )
    assert _scan_cache.ScanCache.of(ksi_env).pydantic_plugins() is None
    _found(ksi_env)
    assert _scan_cache.ScanCache.of(ksi_env).pydantic_plugins() is True
    assert len(scans) == 2


@pytest.fixture
def datings(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """One entry per dating of sys.path (the real dating still runs)."""
    seen: list[float] = []
    real = _scan_cache.sys_path_key

    def counted(now: float) -> str | None:
        seen.append(now)
        return real(now)

    monkeypatch.setattr(_scan_cache, "sys_path_key", counted)
    return seen


def test_a_command_dates_sys_path_once_for_pydantic_and_its_scan(
    site_dir: Path, ksi_env: dict[str, str], scans: list[str], settled: None, datings: list[float]
) -> None:
    _install(site_dir, "sc_once")
    _found(ksi_env)
    assert len(datings) == 1
    assert _scan_cache.ScanCache.early(ksi_env).pydantic_plugins() is False
    assert "sc_once" in [name for name, _, _ in _found(ksi_env)]
    assert len(datings) == 2  # the early dating served the scan: no third
    _found(ksi_env)
    assert len(datings) == 3  # and only once
    assert scans == ["every group"]


def test_a_sys_path_changed_since_the_early_dating_is_dated_again(
    site_dir: Path,
    ksi_env: dict[str, str],
    scans: list[str],
    settled: None,
    datings: list[float],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(site_dir, "sc_before")
    _found(ksi_env)
    _scan_cache.ScanCache.early(ksi_env)
    later = tmp_path / "later-site"
    _install(later, "sc_later")
    monkeypatch.syspath_prepend(str(later))
    names = [name for name, _, _ in _found(ksi_env)]
    assert "sc_later" in names
    assert len(datings) == 3
    assert len(scans) == 2


def test_a_dating_the_command_did_not_use_is_not_served_to_a_later_scan(
    site_dir: Path,
    ksi_env: dict[str, str],
    scans: list[str],
    settled: None,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ksi-host reenable`` dates sys.path and never scans; a scan after it dates again."""
    for name, value in ksi_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(_loader, "_plugins", None)  # as in a new process: the command dates
    _install(site_dir, "sc_first")
    _found(ksi_env)
    assert runner.invoke(cli, ["reenable", "nothing"]).exit_code == 1
    _next_tick()
    _install(site_dir, "sc_second")
    assert "sc_second" in [name for name, _, _ in _found(ksi_env)]
    assert len(scans) == 2


_COUNT_DATINGS = """\
import sys
from ksi_host import _scan_cache
assert "importlib_metadata" not in sys.modules
real, seen = _scan_cache.sys_path_key, []
_scan_cache.sys_path_key = lambda now: seen.append(now) or real(now)
from ksi_host._cli import main
sys.argv = ["ksi-host", "plugins", "--json"]
try:
    main()
except SystemExit:
    pass
print("datings:", len(seen), file=sys.stderr)
"""


def test_a_fresh_command_dates_sys_path_once(tmp_path: Path) -> None:
    """importlib_metadata, imported between the early dating and the scan, is no new finder."""
    env = subprocess_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_DATINGS], env=env, capture_output=True, text=True, check=True
    )
    assert done.stderr.splitlines()[-1] == "datings: 1"
