"""Shared fixtures; also turns pytest's "no tests ran" (exit 5) into a failure."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.dists import build_and_install, install_dist, plugin_source, write_project


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


# --- doctor ---


def _hooked(body: str, *, name: str, extra: str = "") -> str:
    """A plugin module whose class body is ``body`` (hook methods), named ``name``."""
    return (
        "from ksi_host import BasePlugin, PluginMetadata, hookimpl\n"
        f"{extra}\n"
        "class P(BasePlugin):\n"
        f"{body}\n"
        f"plugin = P(PluginMetadata(name={name!r}))\n"
    )


@pytest.fixture(scope="session")
def doctor_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One environment with every problem doctor knows, built once: see tests/test_doctor.py."""
    root = tmp_path_factory.mktemp("doctor-world")
    site, folder, home = root / "site", root / "folder", root / "ksi-home"
    (home / "plugins").mkdir(parents=True)
    folder.mkdir()
    dists = {
        "ksi-fixture-auth": ("1.5", "auth_mod", plugin_source("auth", version="1.5"), "auth"),
        "ksi-fixture-dup": ("1.0", "dup_mod", plugin_source("dup", version="1.0"), "dup"),
        "ksi-fixture-one": ("1.0", "one_mod", plugin_source("one", version="1.0"), "twin"),
        "ksi-fixture-two": ("1.0", "two_mod", plugin_source("two", version="1.0"), "twin"),
        "ksi-fixture-needsmod": ("0.1", "needsmod_mod", "import not_installed_mod\n", "needsmod"),
    }
    for dist, (version, module, source, ep) in dists.items():
        install_dist(
            site,
            dist=dist,
            version=version,
            files={f"{module}.py": source},
            entry_points={ep: module},
        )
    install_dist(
        site,
        dist="ksi-fixture-dup",
        version="0.9",
        files={},
        entry_points={"dup": "dup_mod"},
        info_name="ksi_fixture_dup",
    )
    event = (
        "    @hookimpl\n"
        "    def ksi_handle_event(self, event_name, data, context):\n"
        "        return None\n"
    )
    files = {
        "seg.py": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n",
        "hang.py": "import time\ntime.sleep(60)\n",
        "quits.py": "import sys\nsys.exit(3)\n",
        "vanishes.py": "import os\nos._exit(0)\n",
        "typo.py": _hooked(event.replace("ksi_handle_event", "ksi_handle_events"), name="typo"),
        "badarg.py": _hooked(event.replace("event_name, data", "name, data"), name="badarg"),
        "broken_meta.py": plugin_source("broken_meta", version="not a version"),
        "app.py": plugin_source("app", dependencies=["auth>=2,<3"]),
        "needy.py": plugin_source("needy", dependencies=["storage>=1"]),
        "web.py": plugin_source("web", dependencies=["needy"]),
        "site_ui.py": plugin_source("site_ui", dependencies=["web"]),
        "cyc_a.py": plugin_source("cyc_a", dependencies=["cyc_b"]),
        "cyc_b.py": plugin_source("cyc_b", dependencies=["cyc_a"]),
        "cache_one.py": plugin_source("cache_one", services=["cache"]),
        "cache_two.py": plugin_source("cache_two", services=["cache"]),
        "cache_user.py": plugin_source("cache_user", dependencies=["cache"]),
        "shadow.py": plugin_source("shadow", version="2.0"),
        "off.py": plugin_source("off"),
        "configured.py": _hooked(
            event + "    config_model = Settings\n",
            name="configured",
            extra="from pydantic import BaseModel\nclass Settings(BaseModel):\n    port: int\n",
        ),
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    (home / "plugins" / "shadow.py").write_text(plugin_source("shadow", version="1.0"))
    unsafe = root / "shared-plugins"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    (root / "link-to-shared").symlink_to(unsafe)
    (home / "config.toml").write_text('[host]\n\n[configured]\nport = "eighty"\n\n[ghost]\nx = 1\n')
    return {
        "root": root,
        "site": site,
        "folder": folder,
        "home": home,
        "unsafe": root / "link-to-shared",
    }


@pytest.fixture(scope="session")
def healthy_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An installed plugin and a folder plugin that needs it: everything loads."""
    root = tmp_path_factory.mktemp("doctor-healthy")
    site, folder, home = root / "site", root / "folder", root / "ksi-home"
    (home / "plugins").mkdir(parents=True)
    folder.mkdir()
    install_dist(
        site,
        dist="ksi-fixture-store",
        version="1.2",
        files={"store_mod.py": plugin_source("store", version="1.2", services=["kv"])},
        entry_points={"store": "store_mod"},
    )
    (folder / "front.py").write_text(plugin_source("front", dependencies=["store>=1", "kv"]))
    return {"root": root, "site": site, "folder": folder, "home": home}
