"""Typed errors that say what went wrong, where, and how to fix it: the whole tree.

Every error the host raises on purpose is a :class:`KsiError`; anything else that
escapes is a bug in ksi-host. The tree::

    KsiError
    ├── InvalidPluginMetadata   (ValueError)   metadata or capabilities that do not validate
    ├── InvalidEventName        (ValueError)   an event name outside the namespace:action grammar
    ├── PluginRegistrationError (TypeError)    not a plugin, or a hook that does not match its spec
    ├── TransportNotAttached    (RuntimeError) a transport emitting before a host attached it
    ├── ConfigError             (ValueError)   a config file, section or override that is unusable
    │   ├── PluginConfigInvalid                a plugin's section against its config_model
    │   └── UntrustedConfig                    a config file another user can change
    ├── HostStateError          (RuntimeError) a Host started twice, or used out of order
    ├── HarnessError            (RuntimeError) a ksi_host.testing harness used out of order
    ├── AlreadyRunning                         another daemon holds the socket
    ├── UnsafeRunDir                           the socket's directory is open to other users
    ├── SocketPathUnusable                     the socket path cannot hold a Unix socket
    ├── DaemonNotRunning                       nothing listens on the socket (ksi-host send)
    ├── DaemonUnreachable                      the daemon refused us, or we may not connect
    ├── RequestTimeout                         no reply within the timeout
    ├── ProtocolError                          the answer is not a reply line
    ├── WorkerError                            doctor's worker broke outside any plugin import
    └── MissingExtra            (ImportError)  a feature asked for whose optional library is absent

Plugins raise their own subclasses too (``ksi_plugins_builtin.state.StateDatabaseError``).

Like pip's diagnostic errors, each error keeps its parts (``what``, ``where``,
``hint``) and renders them the same way everywhere; like pluggy's
``PluginValidationError`` it keeps what it is about as attributes (``.plugin``,
``.file``, ``.line``, ``.env_variables``, ``.suggestion``, ...), so a tool such as
``ksi-host doctor`` builds its fixes from those, never from the rendered text.
Errors survive ``pickle`` and ``copy`` (doctor's worker sends them across a process
boundary); an attribute that cannot be pickled, such as a plugin object, arrives as
its ``repr``.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "AlreadyRunning",
    "ConfigError",
    "DaemonNotRunning",
    "DaemonUnreachable",
    "HarnessError",
    "HostStateError",
    "InvalidEventName",
    "InvalidPluginMetadata",
    "KsiError",
    "MetadataProblem",
    "MissingExtra",
    "PluginConfigInvalid",
    "PluginRegistrationError",
    "ProtocolError",
    "RequestTimeout",
    "SocketPathUnusable",
    "TransportNotAttached",
    "UnsafeRunDir",
    "UntrustedConfig",
    "WorkerError",
]


class KsiError(Exception):
    """Base of every error ksi-host raises on purpose."""

    reference: ClassVar[str] = "ksi-error"
    exit_code: ClassVar[int] = 1

    def __init__(self, *, what: str, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """Render as ``error[reference]: what`` plus indented ``where``/``hint`` lines."""
        lines = [f"error[{self.reference}]: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from its attributes, not its ``__init__`` arguments (which are keywords)."""
        return (_rebuild, (type(self), self.args, _picklable(vars(self))))

    def __copy__(self) -> KsiError:
        return _rebuild(type(self), self.args, dict(vars(self)))

    def __deepcopy__(self, memo: dict[int, Any]) -> KsiError:
        """Deep where an attribute can be copied; the same object where it cannot (a lock)."""
        state: dict[str, Any] = {}
        for name, value in vars(self).items():
            try:
                state[name] = copy.deepcopy(value, memo)
            except Exception:
                state[name] = value
        return _rebuild(type(self), self.args, state)


def _rebuild(cls: type[KsiError], args: tuple[Any, ...], state: dict[str, Any]) -> KsiError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


def _picklable(state: dict[str, Any]) -> dict[str, Any]:
    """The attributes as they are where they pickle, else as their ``repr``."""
    kept: dict[str, Any] = {}
    for name, value in state.items():
        try:
            pickle.dumps(value)
        except Exception:
            value = repr(value)
        kept[name] = value
    return kept


class MetadataProblem:
    """One field of plugin metadata that did not validate."""

    __slots__ = ("example", "field", "message", "value")

    def __init__(self, *, field: str, value: object, message: str, example: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        self.example = example

    def __repr__(self) -> str:
        return f"MetadataProblem(field={self.field!r}, value={self.value!r})"

    def render(self) -> str:
        """One line of :class:`InvalidPluginMetadata`'s list: field, value, why, and an example."""
        return f"{self.field} = {self.value!r}: {self.message} (for example: {self.example})"


class InvalidPluginMetadata(KsiError, ValueError):
    """Metadata or capabilities of a plugin that do not validate; lists every problem."""

    reference = "invalid-metadata"

    def __init__(self, *, plugin: str, model: str, problems: Sequence[MetadataProblem]) -> None:
        self.plugin = plugin
        self.model = model
        self.problems = tuple(problems)
        count = len(self.problems)
        details = "\n".join(f"    - {p.render()}" for p in self.problems)
        super().__init__(
            what=f"plugin {plugin!r} has invalid {model} ({count} problem{'s' * (count != 1)})\n"
            + details,
            where=f"{model}(...) of plugin {plugin!r}",
            hint="fix the values above in the plugin's metadata; each line shows a valid example",
        )


class InvalidEventName(KsiError, ValueError):
    """An event name that is not ``namespace:action``."""

    reference = "invalid-event-name"

    def __init__(self, name: object, *, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            what=f"invalid event name {name!r}: {reason}",
            where="event name",
            hint="use 'namespace:action' in lowercase letters, digits, '_' and '-', "
            "e.g. 'system:health'",
        )


class PluginRegistrationError(KsiError, TypeError):
    """An object that pluggy cannot register as a KSI plugin.

    ``hook`` is the hook at fault, if one is; ``suggestion`` the hook name it most
    likely meant (``ksi_handle_events`` -> ``ksi_handle_event``), if there is one.
    """

    reference = "plugin-registration"

    def __init__(
        self,
        *,
        plugin: object,
        name: str,
        what: str,
        hook: str | None = None,
        suggestion: str | None = None,
        hint: str,
    ) -> None:
        self.plugin = plugin
        self.name = name
        self.hook = hook
        self.suggestion = suggestion
        where = f"plugin {name!r}" + (f", hook {hook!r}" if hook else "")
        super().__init__(what=what, where=where, hint=hint)


class TransportNotAttached(KsiError, RuntimeError):
    """A transport asked to emit an event before any host attached itself."""

    reference = "transport-not-attached"

    def __init__(self, *, transport: str) -> None:
        self.transport = transport
        super().__init__(
            what=f"transport {transport!r} is not attached to a host",
            where=f"{transport}.emit_event(...)",
            hint="load it through ksi_host (or call attach(emitter)) before emitting",
        )


class ConfigError(KsiError, ValueError):
    """A configuration file, section or environment override that cannot be used.

    What it is about, as data: ``file`` (the config file, if the problem is in one),
    ``line`` and ``column`` (where in it, when known), ``keys`` (the dotted keys at
    fault, e.g. ``host.startup_timeout``) and ``env_variables`` (the ``KSI_``
    variables that set them, if any did).
    """

    reference = "config-error"

    def __init__(
        self,
        *,
        what: str,
        where: str | None = None,
        hint: str | None = None,
        file: Path | None = None,
        line: int | None = None,
        column: int | None = None,
        keys: Sequence[str] = (),
        env_variables: Sequence[str] = (),
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.keys = tuple(keys)
        self.env_variables = tuple(env_variables)
        super().__init__(what=what, where=where, hint=hint)


class UntrustedConfig(ConfigError):
    """A config file, or its folder, that another user can write or owns.

    The config names the code the host runs, so it is held to the plugin folders' rule
    (:mod:`ksi_host._trust`). ``fix`` is the command that makes it safe; the file
    cannot vouch for itself, so only ``KSI_HOST__TRUST_PATHS`` opts it in.
    """

    reference = "untrusted-config"

    def __init__(self, *, file: Path, problem: str, fix: str, real: Path) -> None:
        self.fix = fix
        super().__init__(
            what=f"the config file cannot be trusted: {problem}",
            where=str(file),
            hint=f"run `{fix}`, or, if you trust whoever can change it, start ksi-host with "
            f"KSI_HOST__TRUST_PATHS='[\"{real}\"]' in its environment (a config file "
            "cannot vouch for itself)",
            file=file,
        )


class PluginConfigInvalid(ConfigError):
    """A plugin's config section that does not validate against its ``config_model``.

    ``problems`` holds ``(key, message)`` for every key at fault.
    """

    reference = "plugin-config-invalid"

    def __init__(self, *, plugin: str, problems: Sequence[tuple[str, str]]) -> None:
        self.plugin = plugin
        self.problems = tuple(problems)
        super().__init__(
            what=f"config section [{plugin}] does not validate: "
            + "; ".join(f"{key}: {message}" for key, message in self.problems),
            where=f"[{plugin}] table of the config file (or its KSI_ overrides)",
            hint=f"fix the [{plugin}] table of the config file (or its KSI_ overrides)",
            keys=[f"{plugin}.{key}" for key, _ in self.problems],
        )


class HostStateError(KsiError, RuntimeError):
    """A lifecycle call out of order, such as starting a host twice."""

    reference = "host-state"

    def __init__(self, *, action: str, phase: str) -> None:
        self.action = action
        self.phase = phase
        super().__init__(
            what=f"cannot {action} a host that is {phase}",
            where="ksi_host.Host",
            hint="a Host starts once and stops once; create a new Host to start again",
        )


class HarnessError(KsiError, RuntimeError):
    """A ``ksi_host.testing`` harness used out of order, or asked about a plugin it lacks."""

    reference = "harness"


class AlreadyRunning(KsiError):
    """Another daemon holds the lock (or serves the socket) at this path."""

    reference = "already-running"

    def __init__(self, *, socket_path: Path, pid: int | None) -> None:
        self.socket_path = socket_path
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(
            what=f"ksi-host is already running ({who})",
            where=f"socket {socket_path}",
            hint=f"stop it first (kill -TERM {pid or '<pid>'}), or give this one another --socket",
        )


class UnsafeRunDir(KsiError):
    """The socket's directory could be entered by someone else."""

    reference = "unsafe-run-dir"

    def __init__(self, *, directory: Path, problem: str) -> None:
        self.directory = directory
        self.problem = problem
        super().__init__(
            what=f"the socket directory {problem}",
            where=str(directory),
            hint="put the socket in a directory only you can enter (mode 0700, owned by you), "
            "e.g. the default ~/.ksi/run/ksi.sock; a missing directory is created that way",
        )


class SocketPathUnusable(KsiError):
    """The socket path cannot hold a Unix socket."""

    reference = "socket-path"

    def __init__(self, *, socket_path: Path, problem: str, hint: str) -> None:
        self.socket_path = socket_path
        self.problem = problem
        super().__init__(what=f"cannot use {socket_path} as a socket: {problem}", hint=hint)


_START_HINT = (
    "start one with `ksi-host run` (in another terminal), or point --socket / KSI_SOCKET "
    "at the socket it listens on"
)


class DaemonNotRunning(KsiError):
    """Nothing listens on the socket."""

    reference = "daemon-not-running"

    def __init__(self, *, socket_path: Path, detail: str) -> None:
        self.socket_path = socket_path
        self.detail = detail
        super().__init__(
            what=f"no ksi-host daemon is running ({detail})",
            where=f"socket {socket_path}",
            hint=_START_HINT,
        )


class DaemonUnreachable(KsiError):
    """The socket exists but we may not connect, or the daemon refused us."""

    reference = "daemon-unreachable"

    def __init__(self, *, socket_path: Path, detail: str) -> None:
        self.socket_path = socket_path
        self.detail = detail
        super().__init__(
            what=f"cannot talk to the daemon: {detail}",
            where=f"socket {socket_path}",
            hint="a daemon serves only the user who started it; run your own with "
            "`ksi-host run`, or use a socket you own",
        )


class RequestTimeout(KsiError):
    """No reply within the timeout."""

    reference = "request-timeout"

    def __init__(self, *, socket_path: Path, event: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.event = event
        self.timeout = timeout
        super().__init__(
            what=f"no reply to {event!r} within {timeout:g}s",
            where=f"socket {socket_path}",
            hint="the daemon may be busy or stuck; retry with a larger --timeout, or check its log",
        )


class ProtocolError(KsiError):
    """The daemon answered with something that is not a reply line."""

    reference = "protocol-error"

    def __init__(self, *, socket_path: Path, detail: str) -> None:
        self.socket_path = socket_path
        self.detail = detail
        super().__init__(
            what=f"the daemon's answer is not a valid reply: {detail}",
            where=f"socket {socket_path}",
            hint="is something other than ksi-host listening on this socket?",
        )


class WorkerError(KsiError):
    """Doctor's worker failed without any plugin import in flight: a broken ksi-host install."""

    reference = "doctor-worker"


class MissingExtra(KsiError, ImportError):
    """A feature was asked for, and the optional library it runs on is not installed."""

    reference = "missing-extra"

    def __init__(self, *, feature: str, module: str, install: str, where: str) -> None:
        self.feature = feature
        self.module = module
        self.install = install
        super().__init__(
            what=f"{feature} needs the {module!r} library, which is not installed",
            where=where,
            hint=f"run: {install}",
        )
