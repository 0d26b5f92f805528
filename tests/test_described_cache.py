"""Kept descriptions: an unchanged installed plugin is planned without importing it, never stale."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ksi_host import _described_cache, _scan_cache, _stamps
from ksi_host._catalog import event_catalog
from ksi_host._described_cache import CACHE_FILE, SWITCH
from ksi_host._paths import KsiPaths
from ksi_host._pipeline import build_plan
from ksi_host._plan import NOT_IMPORTED, LoadPlan
from ksi_host._schema import plugin_entries
from tests.dists import install_dist, install_recorded, recording_source

pytestmark = pytest.mark.usefixtures("settled")


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files changed a moment ago count as settled (the tests' files all just changed).

    A test then waits a file-time tick before it changes a file again, as a real change
    comes ``SETTLE_SECONDS`` after the one a kept description saw.
    """
    monkeypatch.setattr(_scan_cache, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(_stamps, "SETTLE_SECONDS", 0.0)


def _next_tick() -> None:
    time.sleep(0.05)


def _plan(
    env: Mapping[str, str], sections: Mapping[str, Any] | None = None, **more: Any
) -> LoadPlan:
    """A plan as ``plugins`` makes it, in a process that has not imported the plugins."""
    for name in [m for m in sys.modules if m.startswith("dc")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    return build_plan(
        env=env, builtin_package=None, sections=sections, kept_descriptions=True, **more
    )


def _imported(log: Path) -> list[str]:
    return log.read_text().split()


def _kept(env: Mapping[str, str]) -> dict[str, Any]:
    path = KsiPaths.from_env(env).cache_dir / CACHE_FILE
    entries: dict[str, Any] = json.loads(path.read_text())["entries"] if path.exists() else {}
    return entries


def _view(plan: LoadPlan) -> tuple[object, ...]:
    """Everything ``plugins --json`` and ``events --json`` show, and what they are made of."""
    specs = [(s.metadata, s.capabilities, s.hooks, s.origin) for s in plan.order]
    catalog = event_catalog(plan).model_dump()
    return specs, [e.model_dump() for e in plugin_entries(plan)], catalog, plan.warnings


def _install_pair(site: Path) -> None:
    install_recorded(site, "dca")
    source = recording_source("dcb", dependencies=("dca>=1",), namespaces=("dcb", "more"))
    install_recorded(site, "dcb", source=source)


def test_a_kept_description_plans_the_same_without_importing_the_plugin(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    _install_pair(site_dir)
    cold = _plan(ksi_env)
    assert sorted(_imported(imports)) == ["dca", "dcb"]
    assert len(_kept(ksi_env)) == 2

    warm = _plan(ksi_env)
    assert sorted(_imported(imports)) == ["dca", "dcb"]  # neither imported again
    assert "dca_pkg" not in sys.modules
    assert [s.plugin for s in warm.order] == [NOT_IMPORTED, NOT_IMPORTED]
    assert [s.name for s in warm.order] == ["dca", "dcb"]
    assert _view(warm) == _view(cold)


def test_a_plan_for_a_host_neither_reads_nor_keeps_descriptions(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    _install_pair(site_dir)
    _plan(ksi_env)
    for name in [m for m in sys.modules if m.startswith("dc")]:
        del sys.modules[name]
    plan = build_plan(env=ksi_env, builtin_package=None)
    assert all(spec.imported for spec in plan.order)
    assert sorted(_imported(imports)) == ["dca", "dca", "dcb", "dcb"]


def test_the_switch_turns_it_off(site_dir: Path, ksi_env: dict[str, str], imports: Path) -> None:
    _install_pair(site_dir)
    env = {**ksi_env, SWITCH: "0"}
    _plan(env)
    _plan(env)
    assert sorted(_imported(imports)) == ["dca", "dca", "dcb", "dcb"]
    assert not (KsiPaths.from_env(env).cache_dir / CACHE_FILE).exists()


def test_an_edit_in_place_of_the_plugin_is_seen(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "dce")
    _plan(ksi_env)
    _next_tick()
    module = site_dir / "dce_pkg" / "__init__.py"
    before = module.stat()
    text = module.read_text()
    module.write_text(text.replace("records its import", "records its IMPORT"))  # same size
    assert module.stat().st_size == before.st_size
    (spec,) = _plan(ksi_env).order
    assert spec.metadata.description == "records its IMPORT"
    assert _imported(imports) == ["dce", "dce"]


def test_a_file_added_to_the_package_is_seen(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    source = recording_source("dcf").replace(
        "PluginCapabilities(event_namespaces=['dcf'])",
        "PluginCapabilities(event_namespaces=[NAMESPACE])",
    )
    source = (
        "try:\n    from dcf_pkg.extra import NAMESPACE\n"
        "except ImportError:\n    NAMESPACE = 'dcf'\n" + source
    )
    install_recorded(site_dir, "dcf", source=source)
    assert [s.capabilities.event_namespaces for s in _plan(ksi_env).order] == [("dcf",)]
    _next_tick()
    (site_dir / "dcf_pkg" / "extra.py").write_text("NAMESPACE = 'added'\n")
    assert [s.capabilities.event_namespaces for s in _plan(ksi_env).order] == [("added",)]


def test_an_edit_in_place_of_another_module_of_its_distribution_is_seen(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    source = "from dcg_helpers import NAMESPACE\n" + recording_source("dcg").replace(
        "event_namespaces=['dcg']", "event_namespaces=[NAMESPACE]"
    )
    install_dist(
        site_dir,
        dist="ksi-dcg",
        version="1.0",
        files={"dcg_pkg/__init__.py": source, "dcg_helpers.py": "NAMESPACE = 'one'\n"},
        entry_points={"dcg": "dcg_pkg"},
    )
    assert [s.capabilities.event_namespaces for s in _plan(ksi_env).order] == [("one",)]
    _next_tick()
    (site_dir / "dcg_helpers.py").write_text("NAMESPACE = 'two'\n")
    assert [s.capabilities.event_namespaces for s in _plan(ksi_env).order] == [("two",)]
    assert _imported(imports) == ["dcg", "dcg"]


def test_any_change_to_the_environment_drops_every_description(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    _install_pair(site_dir)
    _plan(ksi_env)
    _next_tick()
    install_recorded(site_dir, "dcn")
    _plan(ksi_env)
    assert sorted(_imported(imports)) == ["dca", "dca", "dcb", "dcb", "dcn"]


def test_uninstalling_what_a_plugin_imports_shows_its_import_error_again(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    library = install_dist(
        site_dir,
        dist="dc-lib",
        version="1.0",
        files={"dclib/__init__.py": "NAMESPACE = 'dcu'\n"},
        entry_points={},
    )
    install_recorded(site_dir, "dcu", source="import dclib\n" + recording_source("dcu"))
    assert [s.name for s in _plan(ksi_env).order] == ["dcu"]
    assert "dcu=" in "".join(_kept(ksi_env))
    _next_tick()
    shutil.rmtree(library)  # as pip uninstall does: the metadata, then the code
    shutil.rmtree(site_dir / "dclib")
    sys.modules.pop("dclib", None)
    plan = _plan(ksi_env)
    assert plan.order == ()
    (excluded,) = plan.excluded
    assert (excluded.reason.code, excluded.reason.module) == ("import-error", "dclib")


def test_a_failure_is_never_kept(site_dir: Path, ksi_env: dict[str, str], imports: Path) -> None:
    broken = recording_source("dcx") + "raise RuntimeError('no config')\n"
    install_recorded(site_dir, "dcx", source=broken)
    typo = recording_source("dcy").replace("def ksi_handle_event", "def ksi_handle_events")
    install_recorded(site_dir, "dcy", source=typo)
    reasons = []
    for _ in range(2):
        plan = _plan(ksi_env)
        reasons.append(sorted((e.name, e.reason.code) for e in plan.excluded))
    assert reasons[0] == [("dcx", "import-error"), ("dcy", "hook-mismatch")]
    assert reasons[1] == reasons[0]
    assert sorted(_imported(imports)) == ["dcx", "dcx", "dcy", "dcy"]
    assert _kept(ksi_env) == {}


def test_plugin_files_and_folders_are_never_kept(
    tmp_path: Path, site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    (tmp_path / "dcp.py").write_text(recording_source("dcp"))
    user = KsiPaths.from_env(ksi_env).plugins_dir
    (user / "dcq.py").write_text(recording_source("dcq"))
    install_recorded(site_dir, "dcr")  # so the cache is in use
    for _ in range(2):
        for name in [m for m in sys.modules if m.startswith("ksi_plugin_file_")]:
            del sys.modules[name]
        _plan(ksi_env, paths=[tmp_path / "dcp.py"])
    assert sorted(_imported(imports)) == ["dcp", "dcp", "dcq", "dcq", "dcr"]


def test_an_editable_install_is_never_kept(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    info = install_recorded(site_dir, "dcd")
    (info / "direct_url.json").write_text(
        json.dumps({"url": f"file://{site_dir}", "dir_info": {"editable": True}})
    )
    _plan(ksi_env)
    _plan(ksi_env)
    assert _imported(imports) == ["dcd", "dcd"]


def test_code_its_record_does_not_list_is_never_kept(
    tmp_path: Path, site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    """A module dropped into the package by hand, or a copy found first elsewhere on sys.path."""
    install_dist(
        site_dir,
        dist="ksi-dch",
        version="1.0",
        files={"dch_pkg/__init__.py": ""},
        entry_points={"dch": "dch_pkg.plugin"},
    )
    (site_dir / "dch_pkg" / "plugin.py").write_text(recording_source("dch"))
    install_recorded(site_dir, "dcc")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(site_dir / "dcc_pkg", elsewhere / "dcc_pkg")
    sys.path.insert(0, str(elsewhere))
    try:
        _plan(ksi_env)
        _plan(ksi_env)
    finally:
        sys.path.remove(str(elsewhere))
    assert sorted(_imported(imports)) == ["dcc", "dcc", "dch", "dch"]


def test_a_distribution_installed_twice_in_one_folder_is_never_kept(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    """Two ``.dist-info`` folders of one name and version: which RECORD is the code's?"""
    install_recorded(site_dir, "dcw")
    install_dist(
        site_dir,
        dist="ksi-dcw",
        version="1.0",
        files={"dcw_pkg/__init__.py": recording_source("dcw")},
        entry_points={"dcw": "dcw_pkg"},
        info_name="KSI_DCW",
    )
    _plan(ksi_env)
    _plan(ksi_env)
    assert _imported(imports) == ["dcw", "dcw"]


_CONFIGURED = (
    "from pydantic import BaseModel\n"
    "class Settings(BaseModel):\n    port: int = 80\n"
    + recording_source("dcm").replace(
        "(BasePlugin):\n", "(BasePlugin):\n    config_model = Settings\n"
    )
)


def test_a_config_section_for_a_config_model_is_checked_by_importing(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "dcm", source=_CONFIGURED)
    _plan(ksi_env)
    _plan(ksi_env)
    assert _imported(imports) == ["dcm"]  # no section: kept
    bad = {"dcm": {"port": "eighty"}}
    for _ in range(2):
        (excluded,) = _plan(ksi_env, sections=bad).excluded
        assert excluded.reason.code == "config-invalid"
    assert _imported(imports) == ["dcm", "dcm", "dcm"]


@pytest.mark.parametrize(
    "damage",
    [
        "not json",
        json.dumps({"entries": []}),
        "entry",
    ],
)
def test_a_damaged_cache_is_ignored(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, damage: str
) -> None:
    _install_pair(site_dir)
    cold = _plan(ksi_env)
    path = KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE
    if damage == "entry":
        kept = json.loads(path.read_text())
        for entry in kept["entries"].values():
            entry["files"] = 7
        path.write_text(json.dumps(kept))
    else:
        path.write_text(damage)
    again = _plan(ksi_env)
    assert _view(again) == _view(cold)
    assert sorted(_imported(imports)) == ["dca", "dca", "dcb", "dcb"]
    assert len(_kept(ksi_env)) == 2  # and kept afresh


def test_other_rules_drop_every_description(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_recorded(site_dir, "dck")
    _plan(ksi_env)
    monkeypatch.setattr(_described_cache, "_rules", lambda: "another ksi-host")
    _plan(ksi_env)
    assert _imported(imports) == ["dck", "dck"]


def test_a_file_changed_a_moment_ago_is_not_kept(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two edits within one file-time tick leave the times as they were: too fresh to date."""
    install_recorded(site_dir, "dcs")
    monkeypatch.setattr(_scan_cache, "SETTLE_SECONDS", 1.0)
    monkeypatch.setattr(_stamps, "SETTLE_SECONDS", 1.0)
    time.sleep(1.1)  # the environment has settled; the plugin's code is edited now
    module = site_dir / "dcs_pkg" / "__init__.py"
    module.write_text(module.read_text() + "\n")
    assert [s.name for s in _plan(ksi_env).order] == ["dcs"]
    assert _kept(ksi_env) == {}
    time.sleep(1.1)
    _plan(ksi_env)
    assert len(_kept(ksi_env)) == 1


def test_an_edit_made_while_the_plan_ran_is_never_kept(
    tmp_path: Path,
    site_dir: Path,
    ksi_env: dict[str, str],
    imports: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However long a plan takes, a file changed after it began is not what it imported."""
    monkeypatch.setattr(_scan_cache, "SETTLE_SECONDS", 0.3)
    monkeypatch.setattr(_stamps, "SETTLE_SECONDS", 0.3)
    install_recorded(site_dir, "dct")
    first = site_dir / "dct_pkg" / "__init__.py"
    editor = recording_source("dce2") + (
        f"import pathlib, time\nedited = pathlib.Path({str(first)!r})\n"
        "edited.write_text(edited.read_text().replace('records its import', 'edited meanwhile'))\n"
        "time.sleep(0.5)\n"
    )
    later = tmp_path / "later"
    install_recorded(later, "dce2", source=editor)
    sys.path.append(str(later))  # found after site_dir: imported after dct
    time.sleep(0.4)  # all of it settled
    try:
        _plan(ksi_env)  # imports dct, then dce2 edits dct's file and takes 0.5 s
        (spec,) = [s for s in _plan(ksi_env).order if s.name == "dct"]
    finally:
        sys.path.remove(str(later))
    assert spec.metadata.description == "edited meanwhile"
