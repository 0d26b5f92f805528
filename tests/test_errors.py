"""errors.py: the whole tree in one module, every error keeping its data and surviving pickle."""

from __future__ import annotations

import copy
import inspect
import pickle
import re
import threading
from pathlib import Path

import pytest

import ksi_host
from ksi_host import errors
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
    if inspect.isclass(value) and issubclass(value, KsiError)
]


def _all_ksi_errors() -> set[type[KsiError]]:
    found: set[type[KsiError]] = set()
    todo: list[type[KsiError]] = [KsiError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_of_errors_py_is_drawn_in_its_docstring() -> None:
    ours = {cls for cls in _all_ksi_errors() if cls.__module__ == "ksi_host.errors"}
    drawn = set(re.findall(r"(?:──|^ {4})\s*(\w+)", errors.__doc__ or "", re.MULTILINE))
    assert {cls.__name__ for cls in ours} == drawn


SAMPLES: list[KsiError] = [
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
    errors.MissingExtra(
        feature="the NATS bridge", module="nats", install='pip install "ksi-host[nats]"', where="w"
    ),
]


def test_there_is_a_sample_of_every_error() -> None:
    assert {type(error) for error in SAMPLES} == set(ERRORS) - {KsiError}


def _data(error: KsiError) -> dict[str, object]:
    return {
        name: repr(value) if name == "plugin" and not isinstance(value, str) else value
        for name, value in vars(error).items()
        if name != "problems"
    }


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(
    "clone", [lambda e: pickle.loads(pickle.dumps(e)), copy.copy, copy.deepcopy]
)
def test_errors_survive_pickle_and_copy_with_their_data(error: KsiError, clone) -> None:
    again = clone(error)
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again.args == error.args
    assert (again.what, again.where, again.hint) == (error.what, error.where, error.hint)
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
