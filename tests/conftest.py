"""Shared fixtures; also turns pytest's "no tests ran" (exit 5) into a failure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from click.testing import CliRunner

from ksi_host._config import HostConfig
from ksi_host._lifecycle import Host
from ksi_host._manifest import PluginManifest
from ksi_host._pipeline import build_plan
from ksi_host._plan import LoadPlan, Origin, PluginSpec
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from tests.dists import (
    build_and_install,
    build_wheels,
    install_dist,
    plugin_source,
    write_project,
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _no_test_touches_the_real_ksi_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """KSI_HOME defaults to a session folder, so no test reads or writes the real ``~/.ksi``.

    A test that builds a ``Host`` with the default paths would otherwise open the user's state
    database; tests that need a home of their own still take the ``ksi_home`` fixture.
    """
    saved = os.environ.get("KSI_HOME")
    os.environ["KSI_HOME"] = str(tmp_path_factory.mktemp("ksi-home"))
    yield
    if saved is None:
        del os.environ["KSI_HOME"]
    else:
        os.environ["KSI_HOME"] = saved


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


@pytest.fixture
def imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file plugins made by ``tests.dists.recording_source`` append their name to."""
    log = tmp_path / "imports.log"
    log.touch()
    monkeypatch.setenv("KSI_TEST_IMPORTS", str(log))
    return log


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with three fixture plugins built as real wheels and pip-installed; its python.

    alpha 1.0 and beta 2.0 (needs alpha>=1) load; gamma 0.3 needs 'storage', which nothing provides.
    """
    root = tmp_path_factory.mktemp("wheels")
    python = make_venv(root / "venv")
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
    build_and_install(projects, root / "wheelhouse", python, subprocess_env(root))
    return python


# --- plugin-set management (ksi-host install/uninstall/lock/sync) ---


def answering_source(name: str, version: str, dependencies: Iterable[str] = ()) -> str:
    """A plugin that answers ``NAME:ping`` with its name, version and process id."""
    return (
        "import os\n"
        "from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl\n\n"
        "class Answering(BasePlugin):\n"
        "    @hookimpl\n"
        "    def ksi_handle_event(self, event_name, data, context):\n"
        f"        if event_name == {name + ':ping'!r}:\n"
        f"            return {{'plugin': {name!r}, 'version': {version!r}, 'pid': os.getpid()}}\n\n"
        f"plugin = Answering(PluginMetadata(name={name!r}, version={version!r}, "
        f"dependencies={list(dependencies)!r}), "
        f"PluginCapabilities(commands=[{name + ':ping'!r}]))\n"
    )


CRASH_ON_IMPORT = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"


@pytest.fixture(scope="session")
def plugin_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of wheels for ``pip --no-index --find-links``, built once per session.

    hello 1.0; base 1.0 and 2.0; needsbase (Requires-Dist ksi-plugin-base<2); baseuser
    (plugin dependency on 'base'); oldpluggy (pluggy<1) with a pluggy 0.13.1 to offer;
    future (Requires-Dist ksi-host>=99); futuremeta (ksi-host>=99 only in its
    PluginMetadata); futuremanifest (ksi-host>=99 only in the ksi-plugin.toml it ships);
    crashy (kills the interpreter that imports it).
    """
    root = tmp_path_factory.mktemp("plugin-wheels")
    plugins: list[tuple[str, str, list[str], list[str]]] = [
        ("hello", "1.0", [], []),
        ("base", "1.0", [], []),
        ("base", "2.0", [], []),
        ("needsbase", "1.0", ["ksi-plugin-base<2"], []),
        ("baseuser", "1.0", [], ["base>=1"]),
        ("oldpluggy", "1.0", ["pluggy<1"], []),
        ("future", "1.0", ["ksi-host>=99"], []),
        ("futuremeta", "1.0", [], ["ksi-host>=99"]),
        ("futuremanifest", "1.0", [], []),
        ("crashy", "1.0", [], []),
    ]
    manifest = PluginManifest(
        name="futuremanifest",
        version="1.0",
        dependencies=("ksi-host>=99",),
        commands=("futuremanifest:ping",),
        hooks=("ksi_handle_event",),
    ).to_toml()
    projects = [
        write_project(
            root / "src",
            dist=f"ksi-plugin-{name}",
            version=version,
            package=f"ksi_plugin_{name}",
            source=CRASH_ON_IMPORT
            if name == "crashy"
            else answering_source(name, version, dependencies),
            entry_point=name,
            requires=requires,
            files={f"ksi_plugin_{name}/ksi-plugin.toml": manifest}
            if name == "futuremanifest"
            else None,
        )
        for name, version, requires, dependencies in plugins
    ]
    fake_pluggy = write_project(
        root / "src", dist="pluggy", version="0.13.1", package="pluggy", source="", entry_point=None
    )
    build_wheels([*projects, fake_pluggy], root / "wheelhouse")
    return root / "wheelhouse"


def pip_env(home: Path) -> dict[str, str]:
    """:func:`subprocess_env` with no pip configuration of this machine's (no index, no links)."""
    env = {k: v for k, v in subprocess_env(home).items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@dataclass(frozen=True)
class ManagedVenv:
    """A venv that sees this checkout's ksi-host, and runs ``ksi-host`` and pip in it."""

    python: Path
    home: Path
    wheelhouse: Path

    @property
    def offline(self) -> tuple[str, ...]:
        return ("--no-index", "--find-links", str(self.wheelhouse))

    def ksi(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "-m", "ksi_host", *args],
            capture_output=True,
            text=True,
            env=pip_env(self.home),
            cwd=self.home,
            timeout=timeout,
            check=False,
        )

    def pip(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.python), "-m", "pip", *args],
            capture_output=True,
            text=True,
            env=pip_env(self.home),
            check=True,
        )
        return done.stdout

    @property
    def site(self) -> Path:
        return next(self.python.parent.parent.glob("lib/python*/site-packages"))

    def installed(self) -> dict[str, str]:
        """What pip installed into this venv (not the outer one): distribution -> version.

        Read from its ``.dist-info`` folders, as ``pip freeze`` does, without a process.
        """
        found = {}
        for info in self.site.glob("*.dist-info"):
            name, _, version = info.name[: -len(".dist-info")].partition("-")
            found[name.replace("_", "-").lower()] = version
        return found

    def remove_plugins(self) -> None:
        """Uninstall every distribution pip installed here (with pip, no checks)."""
        installed = self.installed()
        if installed:
            self.pip("uninstall", "-y", "-q", *installed)


class LineSocket:
    """A client connected to the daemon for the whole test: NDJSON requests, one at a time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(str(path))
        self.lines = self.sock.makefile("rb")

    def ask(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        self.sock.sendall(json.dumps({"event": event, "data": data or {}}).encode() + b"\n")
        reply: dict[str, Any] = json.loads(self.lines.readline())
        data: dict[str, Any] = reply.get("data", reply)
        return data

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


def managed_venv(root: Path, wheelhouse: Path) -> ManagedVenv:
    home = root / "home"
    home.mkdir(parents=True)
    return ManagedVenv(make_venv(root / "venv"), home, wheelhouse)


@pytest.fixture(scope="session")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory, plugin_wheelhouse: Path) -> ManagedVenv:
    """The one venv the management tests install into; each test leaves no plugin behind."""
    return managed_venv(tmp_path_factory.mktemp("plugin-venv"), plugin_wheelhouse)


# --- lifecycle ---


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
    """A fresh venv for the baked template plugins; returns its python."""
    return make_venv(tmp_path_factory.mktemp("ksi-venv"))


def make_venv(root: Path) -> Path:
    """A fresh venv that sees this environment's packages (ksi-host and its dependencies,
    pytest, pip) through a ``.pth`` file; returns its python.

    ``venv --system-site-packages`` would see the *base* interpreter's packages, not
    this venv's, so ksi-host would be missing; the ``.pth`` file points at ours
    instead, and a plugin installed into the new venv shadows nothing of ours.
    """
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


def subprocess_env(home: Path) -> dict[str, str]:
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
        env=subprocess_env(home),
    )
    return plugins


# --- daemon ---


DAEMON_EVENTS = Path(__file__).with_name("fixture_plugins") / "daemon_events.py"
"""A plugin file with test:echo, test:sleep and test:raise, loaded like any user plugin."""

MODULES_PROBE = Path(__file__).with_name("fixture_plugins") / "modules_probe.py"
"""A plugin file whose probe:modules tells which of the given modules its process imported."""


def write_config(path: Path, *, state: Path, drain: float = 5.0, extra: str = "") -> Path:
    """A config file for a daemon or host: its state database and drain deadline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"[state]\npath = {json.dumps(str(state))}\n\n[server]\ndrain_timeout = {drain}\n{extra}"
    )
    return path


def host_env(home: Path) -> dict[str, str]:
    """What a host built in-process sees as its environment: a tmp home, no entry points."""
    return {"HOME": str(home), "KSI_HOME": str(home / ".ksi"), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}


def builtin_host(config: HostConfig, home: Path, *, transport: bool = False) -> Host:
    """A real Host over the real plan: the built-ins plus ``DAEMON_EVENTS``, found by discovery.

    Without ``transport`` the ``unix_socket`` plugin is disabled. The config's sections are
    checked as ``run`` checks them: a plugin whose section does not validate is excluded.
    """
    disabled = () if transport else ("unix_socket",)
    plan = build_plan(
        paths=[DAEMON_EVENTS],
        env=host_env(home),
        disabled=disabled,
        sections=config.sections_by_key(),
    )
    unexpected = [e for e in plan.excluded if e.reason.code not in ("disabled", "config-invalid")]
    assert not unexpected, plan.excluded
    return Host(plan, config)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A private dir under /tmp: AF_UNIX paths must stay under 108 bytes, tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(short_dir: Path) -> Path:
    return short_dir / "run" / "ksi.sock"


@pytest.fixture
def ksi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and KSI_HOME at tmp dirs so nothing touches the real home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KSI_HOME", str(home / ".ksi"))
    monkeypatch.delenv("KSI_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return home / ".ksi"


class LineClient:
    """A raw NDJSON connection for tests: send lines, read replies as dicts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path) -> LineClient:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024)
        return cls(reader, writer)

    async def send_raw(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def send(self, event: str, data: Any = None, correlation_id: Any = "1") -> None:
        message: dict[str, Any] = {"event": event, "correlation_id": correlation_id}
        if data is not None:
            message["data"] = data
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def reply(self, timeout: float = 5.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        assert line.endswith(b"\n"), f"connection closed instead of a reply: {line!r}"
        return json.loads(line)  # type: ignore[no-any-return]

    async def at_eof(self, timeout: float = 5.0) -> bool:
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def connect_as_uid(uid: int, path: Path, payload: bytes = b"") -> bytes:
    """Fork a child that drops to ``uid``, sends ``payload`` and returns the first line it reads."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as peer:
                peer.connect(str(path))
                with contextlib.suppress(OSError):
                    peer.sendall(payload)
                os.write(write_end, peer.makefile("rb").readline())
        except OSError as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        line = pipe.read()
    os.waitpid(pid, 0)
    return line


def error_code(answer: dict[str, Any]) -> str | None:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None


def _soft_files(limit: int) -> Callable[[], None]:
    def lower() -> None:  # pragma: no cover - runs in the child before exec
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )

    return lower


class DaemonProcess:
    """``ksi-host run`` in a subprocess with the real plugins plus ``DAEMON_EVENTS``.

    Daemons of one ``root`` share its socket, config and state database (a restart
    finds the state again); each has its own stderr log file.
    """

    def __init__(self, root: Path, drain: float = 5.0, name: str = "daemon") -> None:
        self.root = root
        self.socket_path = root / "run" / "ksi.sock"
        self.config_path = root / "ksi.toml"
        if not self.config_path.exists():
            write_config(self.config_path, state=root / "state.db", drain=drain)
        self.env = subprocess_env(root / "home")
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        """``python -m ksi_host ARGS``."""
        return [sys.executable, "-m", "ksi_host", *args]

    def run_args(self, config: Path | None = None) -> tuple[str, ...]:
        """``run`` on this daemon's socket with its config and ``DAEMON_EVENTS``."""
        return (
            "run",
            *("--socket", str(self.socket_path)),
            *("--config", str(config or self.config_path)),
            *("--plugin-path", str(DAEMON_EVENTS)),
        )

    def start(
        self, *args: str, wait: bool = True, soft_files: int | None = None
    ) -> subprocess.Popen[bytes]:
        """``ksi-host ARGS`` (default :meth:`run_args`), its stdout and stderr to the log.

        ``soft_files``: the soft open-files limit the daemon starts with (the hard one stays).
        """
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(*(args or self.run_args())),
                stdout=log,
                stderr=log,
                env=self.env,
                cwd=self.root,
                preexec_fn=None if soft_files is None else _soft_files(soft_files),
            )
        if wait:
            self.wait_ready()
        return self.proc

    def log(self) -> str:
        """What the daemon wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``ksi-host ARGS`` in a subprocess with this daemon's environment."""
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def send(self, event: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``ksi-host send EVENT ARGS`` to this daemon's socket."""
        return self.cli("send", event, "--socket", str(self.socket_path), *args)

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            if "ready: pid" in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon did not become ready:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon_factory(short_dir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Make daemons that share ``short_dir`` (socket, config, state); kills leftovers."""
    started: list[DaemonProcess] = []

    def make(drain: float = 5.0) -> DaemonProcess:
        daemon = DaemonProcess(short_dir, drain, name=f"daemon-{len(started)}")
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


@contextlib.contextmanager
def running_daemon(server: str = "") -> Iterator[DaemonProcess]:
    """A daemon in its own /tmp dir, with ``server`` lines added to its ``[server]`` section."""
    root = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    write_config(root / "ksi.toml", state=root / "state.db", extra=server)
    daemon = DaemonProcess(root)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_daemon() -> Iterator[DaemonProcess]:
    """One running daemon for a module's tests that do not disturb each other."""
    with running_daemon() as daemon:
        yield daemon


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
