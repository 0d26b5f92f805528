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


# --- lifecycle ---

from collections.abc import Callable, Iterable  # noqa: E402
from types import MappingProxyType  # noqa: E402
from typing import Any  # noqa: E402

from ksi_host._plan import LoadPlan, Origin, PluginSpec  # noqa: E402
from ksi_host.plugin_base import BasePlugin, hookimpl  # noqa: E402
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata  # noqa: E402


class ScriptedPlugin(BasePlugin):
    """A real plugin whose every hook logs its call, may raise, and answers what it is told."""

    def __init__(
        self,
        name: str,
        *,
        namespaces: Iterable[str] = (),
        commands: Iterable[str] = (),
        raises: Iterable[str] = (),
        answers: dict[str, Any] | None = None,
        log: list[tuple[str, str]] | None = None,
        dependencies: Iterable[str] = (),
    ) -> None:
        super().__init__(
            PluginMetadata(name=name, version="1.0", dependencies=list(dependencies)),
            PluginCapabilities(event_namespaces=list(namespaces), commands=list(commands)),
        )
        self.raises = set(raises)
        self.answers = answers or {}
        self.log = [] if log is None else log
        self.context: Any = None

    def _hit(self, hook: str) -> None:
        self.log.append((self.name, hook))
        if hook in self.raises:
            raise RuntimeError(f"{self.name} broke in {hook}")

    @hookimpl
    def ksi_plugin_context(self, context: Any) -> None:
        self._hit("ksi_plugin_context")
        self.context = context

    @hookimpl
    def ksi_startup(self) -> Any:
        self._hit("ksi_startup")
        return {"status": "plugin_started"}

    @hookimpl
    def ksi_shutdown(self) -> Any:
        self._hit("ksi_shutdown")
        return {"status": "plugin_stopped"}

    @hookimpl
    def ksi_filter_event(self, event_name: str, data: dict[str, Any]) -> Any:
        self._hit("ksi_filter_event")
        return data

    @hookimpl
    def ksi_validate_event(self, event_name: str, data: dict[str, Any]) -> None:
        self._hit("ksi_validate_event")

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        self._hit("ksi_handle_event")
        return self.answers.get(event_name)

    @hookimpl
    def ksi_metrics_collected(self, metrics: dict[str, Any]) -> Any:
        self._hit("ksi_metrics_collected")
        metrics[self.name] = {"hooks_called": len(self.log)}
        return metrics


def plan_of(*plugins: BasePlugin, requires: dict[str, tuple[str, ...]] | None = None) -> LoadPlan:
    """A LoadPlan built by hand, in the given order, as the resolver would hand it over."""
    specs = tuple(
        PluginSpec(
            plugin=plugin,
            metadata=plugin.metadata,
            capabilities=plugin.capabilities,
            origin=Origin("path", "test"),
        )
        for plugin in plugins
    )
    return LoadPlan(order=specs, requires=MappingProxyType(dict(requires or {})))


@pytest.fixture(scope="session")
def scripted_plugin() -> type[ScriptedPlugin]:
    return ScriptedPlugin


@pytest.fixture(scope="session")
def make_plan() -> Callable[..., LoadPlan]:
    return plan_of
