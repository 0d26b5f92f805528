"""Shared fixtures; also turns pytest's "no tests ran" (exit 5) into a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# --- template ---

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "cookiecutter-ksi-plugin"


@dataclass(frozen=True)
class BakedPlugin:
    """A project baked from the template, and the names it was baked with."""

    path: Path
    plugin_name: str
    module_name: str
    dist_name: str
    namespace: str


def _cookiecutter_config(root: Path) -> Path:
    """A cookiecutter config that keeps its replay and clone dirs out of the real home."""
    config = root / "cookiecutterrc.yaml"
    if not config.exists():
        config.write_text(
            f"cookiecutters_dir: {root / 'cookiecutters'}\nreplay_dir: {root / 'replay'}\n"
        )
    return config


def bake_template(output_dir: Path, **answers: str) -> BakedPlugin:
    """Bake the template with ``answers`` (the rest default) into ``output_dir``."""
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    scratch = output_dir.parent / f"{output_dir.name}-scratch"
    scratch.mkdir(exist_ok=True)
    # cookiecutter leaves each rendered hook script in the temp dir: keep them in ours.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(scratch))
        project = Path(
            cookiecutter(
                str(TEMPLATE_DIR),
                no_input=True,
                extra_context=answers,
                output_dir=str(output_dir),
                config_file=str(_cookiecutter_config(scratch)),
            )
        )
    context = json.loads((scratch / "replay" / "cookiecutter-ksi-plugin.json").read_text())
    chosen = context["cookiecutter"]
    return BakedPlugin(
        path=project,
        plugin_name=chosen["plugin_name"],
        module_name=chosen["module_name"],
        dist_name=chosen["dist_name"],
        namespace=chosen["namespace"],
    )


UNUSUAL_ANSWERS: dict[str, str] = {
    "plugin_name": "Weather.Station-2_x",
    "description": (
        'A "quoted" plugin that\'s long \u2014 \'single\' and "double" quotes, a back\\slash, '
        "an emoji \U0001f4a1, and enough words to run well past one hundred characters"
    ),
    "author": "Zo\u00eb O'Brien <zoe@example.org>",
    "license": "Apache-2.0",
}


@pytest.fixture(scope="session")
def baked_default(tmp_path_factory: pytest.TempPathFactory) -> BakedPlugin:
    return bake_template(tmp_path_factory.mktemp("baked-default") / "out")


@pytest.fixture(scope="session")
def baked_unusual(tmp_path_factory: pytest.TempPathFactory) -> BakedPlugin:
    return bake_template(tmp_path_factory.mktemp("baked-unusual") / "out", **UNUSUAL_ANSWERS)


@pytest.fixture(scope="session")
def ksi_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees this environment's packages (ksi-host and its dependencies,
    pytest, pip) through a ``.pth`` file; returns its python.

    ``venv --system-site-packages`` would see the *base* interpreter's packages, not
    this venv's, so ksi-host would be missing; the ``.pth`` file points at ours
    instead, and a plugin installed into the new venv shadows nothing of ours.
    """
    root = tmp_path_factory.mktemp("ksi-venv")
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in ours)
    (Path(purelib) / "_ksi_outer_env.pth").write_text(lines)
    return python


def ksi_env(home: Path) -> dict[str, str]:
    """The environment for a ksi-host subprocess: its own home, no plugin settings of ours."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KSI_", "PYTHON", "XDG_"))
    }
    env.update(HOME=str(home), KSI_HOME=str(home / ".ksi"), TMPDIR=str(home))
    return env


@pytest.fixture(scope="session")
def installed_plugins(
    ksi_venv: Path,
    baked_default: BakedPlugin,
    baked_unusual: BakedPlugin,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BakedPlugin, ...]:
    """Both baked plugins, pip-installed (not editable) into ``ksi_venv``."""
    home = tmp_path_factory.mktemp("pip-home")
    plugins = (baked_default, baked_unusual)
    subprocess.run(
        [str(ksi_venv), "-m", "pip", "install", "-q", "--no-deps", "--no-input"]
        + [str(plugin.path) for plugin in plugins],
        check=True,
        env=ksi_env(home),
    )
    return plugins
