"""errors.py: the whole tree in one module, every error keeping its data and surviving pickle."""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil
import re
import threading
from pathlib import Path
from types import ModuleType

import pytest

import ksi_host
import ksi_plugins_builtin
from ksi_host import errors
from ksi_host._manage.checks import Problem
from ksi_host.errors import (
    ConfigError,
    InvalidPluginMetadata,
    KsiError,
    MetadataProblem,
    PluginConfigInvalid,
    PluginRegistrationError,
)

ERRORS = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value) and issubclass(value, BaseException)
]


def _drawn_tree() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Each class the docstring draws: its drawn parent and the bases named in parentheses."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^ {4}((?:[│ ] {3}|[├└]── )*)(\w+)\s*(?:\(([\w, ]+)\))?", line)
        assert match, f"not a line of the tree: {line!r}"
        depth = len(match[1]) // 4
        del parents[depth:]
        bases = tuple(name.strip() for name in match[3].split(",")) if match[3] else ()
        drawn[match[2]] = (parents[-1] if parents else None, bases)
        parents.append(match[2])
    return drawn


def test_the_docstring_draws_every_error_of_errors_py_where_it_is_in_the_tree() -> None:
    drawn = _drawn_tree()
    assert set(drawn) == {cls.__name__ for cls in ERRORS}
    for cls in ERRORS:
        parent, extra = drawn[cls.__name__]
        bases = [base.__name__ for base in cls.__bases__]
        if parent is None:
            assert list(extra) == bases, cls
        else:
            assert [parent, *extra] == bases, cls


def _modules(package: ModuleType) -> list[ModuleType]:
    """Every module of ``package``; one whose optional library is not installed is left out."""
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            found.append(importlib.import_module(info.name))
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith(("ksi_host", "ksi_plugins_builtin")):
                raise
    return found


@pytest.mark.parametrize("package", [ksi_host, ksi_plugins_builtin], ids=lambda p: p.__name__)
def test_no_exception_class_is_defined_outside_errors_py(package: ModuleType) -> None:
    modules = _modules(package)
    assert len(modules) > 5
    elsewhere = [
        f"{module.__name__}.{name}"
        for module in modules
        if module is not errors
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]
    assert elsewhere == []


def test_every_ksi_error_lives_in_errors_py() -> None:
    """Loaded subclasses of KsiError (all modules were imported above) are all errors.py's."""
    _modules(ksi_host)
    _modules(ksi_plugins_builtin)
    todo: list[type[BaseException]] = [KsiError]
    found: set[type[BaseException]] = set()
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    ours = {cls for cls in found if cls.__module__.startswith(("ksi_host", "ksi_plugins_builtin"))}
    assert ours <= set(ERRORS)


SAMPLES: list[BaseException] = [
    InvalidPluginMetadata(
        plugin="p",
        model="PluginMetadata",
        problems=[MetadataProblem(field="version", value="x", message="bad", example="'1.0'")],
    ),
    errors.InvalidEventName("Bad", reason="capitals"),
    PluginRegistrationError(
        plugin=threading.Lock(),  # cannot be pickled: arrives as its repr
        name="p",
        what="w",
        hook="ksi_handle_events",
        suggestion="ksi_handle_event",
        hint="h",
    ),
    errors.TransportNotAttached(transport="t"),
    ConfigError(
        what="w",
        where="x",
        hint="h",
        file=Path("/c.toml"),
        line=3,
        column=4,
        keys=["host.disabled"],
        env_variables=["KSI_HOST__DISABLED"],
    ),
    PluginConfigInvalid(plugin="weather", problems=[("city", "Field required")]),
    errors.UntrustedConfig(
        file=Path("/c.toml"),
        problem="file /c.toml is writable",
        fix="chmod go-w /c.toml",
        real=Path("/c.toml"),
    ),
    errors.HostStateError(action="start", phase="running"),
    errors.HarnessError(what="w"),
    errors.AlreadyRunning(socket_path=Path("/s"), pid=3),
    errors.UnsafeRunDir(directory=Path("/d"), problem="is open"),
    errors.SocketPathUnusable(socket_path=Path("/s"), problem="p", hint="h"),
    errors.DaemonNotRunning(socket_path=Path("/s"), detail="d"),
    errors.DaemonUnreachable(socket_path=Path("/s"), detail="d"),
    errors.RequestTimeout(socket_path=Path("/s"), event="a:b", timeout=2.0),
    errors.ProtocolError(socket_path=Path("/s"), detail="d"),
    errors.WorkerError(what="w"),
    errors.HostRequired(plugin="nats", needs="the host's dispatch and emit chain"),
    errors.MissingExtra(
        feature="the NATS bridge", module="nats", install='pip install "ksi-host[nats]"', where="w"
    ),
    errors.InvalidManifest(where="pkg/ksi-plugin.toml", problems=["hooks.0: not a hook"]),
    errors.ManifestError(what="w", where="x", hint="h"),
    errors.DeadlineExceeded(seconds=1.5),
    errors.WorkerProtocolError(plugin="p", what="w", where="x", hint="h"),
    errors.WorkerCrashed(plugin="p", cause="the worker of plugin 'p' (pid 9) was killed"),
    errors.WebSocketUnavailable(host="127.0.0.1", port=8765, detail="address in use"),
    errors.WebSocketRequestFailed(url="ws://127.0.0.1:8765", what="w", hint="h"),
    errors.NotKsiHost(socket_path=Path("/s"), pid=3, detail="pid 3 is `sleep 9`"),
    errors.StopTimeout(socket_path=Path("/s"), pid=3, timeout=10.0),
    errors.ChangeRefused(
        action="install weather==2",
        problems=[
            Problem(
                kind="breaks-dependent",
                package="forecast",
                dist="forecast",
                version="1.0",
                requirement="weather<2",
                target="weather",
                installed="1.0",
                proposed="2",
            )
        ],
        suggestions=["ksi-host install 'weather<2'"],
    ),
    errors.NotInstalled(names=["nothing"], plugins=["weather"]),
    errors.HostPackage(name="pluggy", needed_by="ksi-host requires pluggy>=1.5"),
    errors.LockFileError(file=Path("/ksi.lock"), what="w", hint="h"),
    errors.PipFailed(command=["python", "-m", "pip", "install", "x"], returncode=1, output="no"),
    errors.StateDatabaseError(path=Path("/s.db"), problem="file is not a database"),
    errors.PluginStalled("p", "ksi_startup", 1.5, 1.0),
]


def test_there_is_a_sample_of_every_error() -> None:
    assert sorted(type(error).__name__ for error in SAMPLES) == sorted(
        cls.__name__ for cls in ERRORS if cls is not KsiError
    )


def _data(error: BaseException) -> dict[str, object]:
    """The attributes, with what arrives as its repr (a plugin object, a problem) as repr."""
    return {
        name: repr(value)
        if name in ("plugin", "problems") and not isinstance(value, str)
        else value
        for name, value in vars(error).items()
    }


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    "clone", [lambda e: pickle.loads(pickle.dumps(e)), copy.copy, copy.deepcopy]
)
def test_errors_survive_pickle_and_copy_with_their_data(error: BaseException, clone) -> None:
    assert vars(error), "an error keeps what it is about as attributes"
    again = clone(error)
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again.args == error.args
    if clone is copy.copy:
        assert vars(again) == vars(error)
    else:
        assert _data(again) == _data(error)


def test_problems_of_metadata_survive_pickle() -> None:
    [error] = [e for e in SAMPLES if isinstance(e, InvalidPluginMetadata)]
    [problem] = pickle.loads(pickle.dumps(error)).problems
    assert (problem.field, problem.value, problem.example) == ("version", "x", "'1.0'")


def test_config_errors_keep_where_they_are_about() -> None:
    error = pickle.loads(pickle.dumps(SAMPLES[4]))
    assert isinstance(error, ConfigError)
    assert (error.file, error.line, error.column) == (Path("/c.toml"), 3, 4)
    assert (error.keys, error.env_variables) == (("host.disabled",), ("KSI_HOST__DISABLED",))
    plugin_error = SAMPLES[5]
    assert isinstance(plugin_error, PluginConfigInvalid)
    assert plugin_error.keys == ("weather.city",)
    assert plugin_error.problems == (("city", "Field required"),)


def test_the_public_errors_are_importable_from_ksi_host() -> None:
    for name in ("ConfigError", "KsiError", "PluginConfigInvalid", "InvalidPluginMetadata"):
        assert getattr(ksi_host, name) is getattr(errors, name)
