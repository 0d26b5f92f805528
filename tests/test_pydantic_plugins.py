"""pydantic's own plugin scan is spared only when a valid kept scan proves it finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.plugin import _loader

from ksi_host import _scan_cache
from ksi_host._discover import discover
from ksi_host._pydantic_plugins import spare_pydantic_scan
from tests.conftest import subprocess_env
from tests.dists import install_dist, plugin_source

_PYDANTIC_PLUGIN = """\
import os
from pathlib import Path


class _Plugin:
    def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind, config,
                             plugin_settings):
        with Path(os.environ["PYD_MARKER"]).open("a") as marker:
            marker.write(schema_type.__name__ + "\\n")
        return None, None, None


plugin = _Plugin()
"""


def _install_plugins(site: Path, *, pydantic_plugin: bool) -> None:
    install_dist(
        site,
        dist="pp-plugin",
        version="1.0",
        files={"pp_plugin_pkg/__init__.py": plugin_source("pp_plugin")},
        entry_points={"pp_plugin": "pp_plugin_pkg"},
    )
    if pydantic_plugin:
        install_dist(
            site,
            dist="pp-pydantic-plugin",
            version="1.0",
            files={"pp_pydantic_plugin/__init__.py": _PYDANTIC_PLUGIN},  # no pyc in site
            entry_points={},
            other_entry_points={"pydantic": {"pp_marker": "pp_pydantic_plugin:plugin"}},
        )


@pytest.fixture
def unscanned(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic as a fresh process sees it: no plugin scan yet (restored afterwards)."""
    monkeypatch.setattr(_loader, "_plugins", None)
    monkeypatch.setattr(_scan_cache, "SETTLE_SECONDS", 0.0)


@pytest.mark.parametrize("pydantic_plugin", [False, True])
def test_only_a_kept_scan_that_found_no_pydantic_plugin_spares_pydantics_scan(
    site_dir: Path,
    ksi_env: dict[str, str],
    unscanned: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pydantic_plugin: bool,
) -> None:
    _install_plugins(site_dir, pydantic_plugin=pydantic_plugin)
    assert spare_pydantic_scan(ksi_env) is False  # nothing kept yet: pydantic must look
    assert _loader._plugins is None
    discover(env=ksi_env, builtin_package=None)
    assert spare_pydantic_scan(ksi_env) is not pydantic_plugin
    marker = tmp_path / "built.txt"
    monkeypatch.setenv("PYD_MARKER", str(marker))

    class Probe(BaseModel):
        value: int

    assert Probe(value=1).value == 1
    loaded = marker.read_text().split() if marker.exists() else []
    assert loaded == (["Probe"] if pydantic_plugin else [])
    assert ("pp_pydantic_plugin" in sys.modules) is pydantic_plugin


def test_a_pydantic_without_its_private_plugin_table_scans_as_ever(
    site_dir: Path, ksi_env: dict[str, str], unscanned: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table is pydantic's private name: a release without it must not break a command."""
    _install_plugins(site_dir, pydantic_plugin=False)
    discover(env=ksi_env, builtin_package=None)
    monkeypatch.delattr(_loader, "_plugins")
    assert spare_pydantic_scan(ksi_env) is False
    assert not hasattr(_loader, "_plugins")


def test_the_command_line_builds_no_model_before_it_can_spare_the_scan() -> None:
    """``main()`` decides first: importing the CLI must not have built a model already."""
    code = (
        "import ksi_host._cli, ksi_host._pydantic_plugins\n"
        "from pydantic.plugin import _loader\n"
        "print(_loader._plugins)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_a_pydantic_plugin_installed_still_sees_the_commands_models(tmp_path: Path) -> None:
    """End to end: the second command reads the valid kept scan, which names the plugin."""
    site, home, cwd, marker = (tmp_path / name for name in ("site", "home", "cwd", "marker"))
    for folder in (home, cwd, marker):
        folder.mkdir()
    _install_plugins(site, pydantic_plugin=True)
    env = subprocess_env(home)
    env.update(PYTHONPATH=str(site), PYD_MARKER=str(marker / "built.txt"))
    cache = home / ".ksi" / "cache" / _scan_cache.CACHE_FILE
    time.sleep(_scan_cache.SETTLE_SECONDS + 0.1)  # so the first command keeps its scan
    kept: list[int] = []
    for _ in range(2):
        argv = [sys.executable, "-m", "ksi_host", "plugins", "--json"]
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=True)
        assert "PluginMetadata" in (marker / "built.txt").read_text().split()
        (marker / "built.txt").unlink()
        kept.append(cache.stat().st_mtime_ns)
        assert json.loads(cache.read_text())["pydantic"] is True
    assert kept[0] == kept[1]  # the second command used the kept scan
