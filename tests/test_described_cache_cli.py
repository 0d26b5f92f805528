"""Kept descriptions end to end: real wheels, real pip, the real CLI in fresh processes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ManagedVenv, managed_venv, pip_env

from ksi_host._described_cache import SWITCH
from ksi_host._stamps import SETTLE_SECONDS
from tests.dists import build_wheels, recording_source, write_project

pytestmark = pytest.mark.slow

VIEWS = (("plugins", "--json"), ("plugins",), ("events", "--json"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> ManagedVenv:
    """A venv, and wheels of a plugin, the library it imports, and another plugin."""
    root = tmp_path_factory.mktemp("described")
    src = root / "src"
    library = write_project(
        src,
        dist="ksi-dc-lib",
        version="1.0",
        package="dcl_lib",
        source="NAMESPACE = 'dcp'\n",
        entry_point=None,
    )
    plugin = write_project(
        src,
        dist="ksi-dc-plugin",
        version="1.0",
        package="dcp_pkg",
        source=recording_source("dcp") + "import dcl_lib\n",
        entry_point="dcp",
        requires=["ksi-dc-lib"],
    )
    other = write_project(
        src,
        dist="ksi-dc-other",
        version="1.0",
        package="dco_pkg",
        source=recording_source("dco"),
        entry_point="dco",
    )
    build_wheels([library, plugin, other], root / "wheelhouse")
    (root / "cwd").mkdir()
    return managed_venv(root, root / "wheelhouse")


def _settle() -> None:
    """Wait until what pip just changed is old enough to date (see ``_scan_cache``)."""
    time.sleep(SETTLE_SECONDS + 0.2)


def _ksi(venv: ManagedVenv, *args: str, **env: str) -> tuple[int, str]:
    """``python -m ksi_host ARGS`` from a folder nothing writes to: it is on ``sys.path``."""
    done = subprocess.run(
        [str(venv.python), "-m", "ksi_host", *args],
        capture_output=True,
        text=True,
        env={**pip_env(venv.home), "KSI_TEST_IMPORTS": str(_log(venv)), **env},
        cwd=venv.home.parent / "cwd",
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout


def _log(venv: ManagedVenv) -> Path:
    return venv.home.parent / "imports.log"


def _imported(venv: ManagedVenv) -> list[str]:
    log = _log(venv)
    found = log.read_text().split() if log.exists() else []
    log.write_text("")
    return found


def _entry(output: str, name: str) -> dict[str, Any]:
    [entry] = [e for e in json.loads(output)["plugins"] if e["name"] == name]
    return entry


def _doctor(venv: ManagedVenv, **env: str) -> dict[str, Any]:
    """``doctor --json`` with each import's duration blanked: a timing, never the same twice."""
    code, output = _ksi(venv, "doctor", "--json", **env)
    report: dict[str, Any] = json.loads(output)
    assert code == 0, report
    for entry in report["plugins"]:
        assert entry["import_ms"] is not None
        entry["import_ms"] = "measured"
    return report


def test_every_view_is_the_same_warm_and_cold_and_never_stale(venv: ManagedVenv) -> None:
    venv.pip("install", "-q", "--no-deps", *venv.offline, "ksi-dc-lib", "ksi-dc-plugin")
    _settle()
    cold = {view: _ksi(venv, *view, **{SWITCH: "0"}) for view in VIEWS}
    cold_doctor = _doctor(venv, **{SWITCH: "0"})
    assert _imported(venv) == ["dcp"] * (len(VIEWS) + 1)
    assert _entry(cold["plugins", "--json"][1], "dcp")["status"] == "loadable"

    _ksi(venv, "plugins", "--json")  # keeps what it described
    assert _imported(venv) == ["dcp"]
    warm = {view: _ksi(venv, *view) for view in VIEWS}
    assert warm == cold
    assert _imported(venv) == []  # described without importing it
    assert _doctor(venv) == cold_doctor  # doctor imports every plugin, kept or not
    assert _imported(venv) == ["dcp"]

    installed = venv.site / "dcp_pkg" / "__init__.py"
    installed.write_text(installed.read_text().replace('version="1.0"', 'version="1.1"'))
    _settle()
    for view in (("plugins", "--json"), ("plugins", "--json"), ("plugins",), ("plugins",)):
        _, output = _ksi(venv, *view)  # no kept answer (answers.json) hides the edit either
        assert "dcp says it is version 1.1" in output
    assert _imported(venv) == ["dcp"]
    installed.write_text(installed.read_text().replace('version="1.1"', 'version="1.0"'))

    venv.pip("install", "-q", "--no-deps", *venv.offline, "ksi-dc-other")
    _settle()
    code, output = _ksi(venv, "plugins", "--json")
    assert sorted(_imported(venv)) == ["dco", "dcp"]  # a new environment: described afresh
    assert (code, _entry(output, "dco")["status"]) == (0, "loadable")

    venv.pip("uninstall", "-q", "-y", "ksi-dc-lib")
    _settle()
    for described in (["dco", "dcp"], ["dcp"]):  # dco is kept again; a failure never is
        code, output = _ksi(venv, "plugins", "--json")
        reason = _entry(output, "dcp")["reason"]
        assert (code, reason["code"]) == (1, "import-error")
        assert "No module named 'dcl_lib'" in reason["message"]
        assert sorted(_imported(venv)) == described


def test_an_editable_install_is_described_afresh_by_every_command(
    venv: ManagedVenv, tmp_path: Path
) -> None:
    project = write_project(
        tmp_path,
        dist="ksi-dc-edit",
        version="1.0",
        package="dce_pkg",
        source=recording_source("dce"),
        entry_point="dce",
    )
    with (project / "pyproject.toml").open("a") as pyproject:  # a .pth: no `editables` needed
        pyproject.write('dev-mode-dirs = ["."]\n')
    venv.pip("install", "-q", "--no-deps", "--no-build-isolation", "-e", str(project))
    _settle()
    _imported(venv)
    for description in ("records its import", "edited without pip"):
        _, output = _ksi(venv, "events", "--json")
        assert _imported(venv).count("dce") == 1
        [event] = [e for e in json.loads(output)["events"] if e["plugin"] == "dce"]
        assert event["description"] == description
        source = project / "dce_pkg" / "__init__.py"
        source.write_text(source.read_text().replace("records its import", "edited without pip"))
    venv.pip("uninstall", "-q", "-y", "ksi-dc-edit")
