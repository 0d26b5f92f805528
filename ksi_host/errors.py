"""Typed errors that say what went wrong, where, and how to fix it: the whole tree.

Every error ksi-host (and its built-in plugins) raises on purpose is a :class:`KsiError`;
anything else that escapes is a bug in ksi-host. The tree, in the order data flows
(a plugin's code, the config, the host, the daemon and its clients, the plugin-set
commands, the built-ins); a name in parentheses is a further base class::

    KsiError                    (Exception)
    ├── InvalidPluginMetadata   (ValueError)   metadata or capabilities that do not validate
    ├── InvalidEventName        (ValueError)   an event name outside the namespace:action grammar
    ├── PluginRegistrationError (TypeError)    not a plugin, or a hook that does not match its spec
    ├── InvalidManifest         (ValueError)   a ksi-plugin.toml that does not parse or validate
    ├── ManifestError                          ksi-host manifest cannot find or describe its plugin
    ├── TransportNotAttached    (RuntimeError) a transport emitting before a host attached it
    ├── ConfigError             (ValueError)   a config file, section or override that is unusable
    │   ├── UntrustedConfig                    a config file another user can change
    │   └── PluginConfigInvalid                a plugin's section against its config_model
    ├── HostStateError          (RuntimeError) a Host started twice, or used out of order
    ├── HarnessError            (RuntimeError) a ksi_host.testing harness used out of order
    ├── DeadlineExceeded                       a call into a plugin awaited past its deadline
    ├── WorkerProtocolError                    an isolated plugin's worker did not start properly
    ├── WorkerCrashed                          an isolated plugin's worker died or is restarting
    ├── WorkerError                            doctor's worker broke outside any plugin import
    ├── AlreadyRunning                         another daemon holds the socket
    ├── UnsafeRunDir                           the socket's directory is open to other users
    ├── SocketPathUnusable                     the socket path cannot hold a Unix socket
    ├── WebSocketUnavailable                   the WebSocket port cannot be listened on
    ├── DaemonNotRunning                       nothing listens on the socket (ksi-host send)
    ├── DaemonUnreachable                      the daemon refused us, or we may not connect
    ├── RequestTimeout                         no reply within the timeout
    ├── ProtocolError                          the answer is not a reply line
    ├── WebSocketRequestFailed                 send --websocket got no valid reply
    ├── NotKsiHost                             the pid in a socket's lock is not a ksi-host daemon
    ├── StopTimeout                            the daemon still runs when stop's timeout ends
    ├── ChangeRefused                          an install, uninstall or sync that would break things
    ├── NotInstalled                           uninstall of a distribution that is not installed
    ├── HostPackage                            uninstall of ksi-host or a distribution it needs
    ├── LockFileError                          a lock file unreadable, or a sync that missed it
    ├── PipFailed                              pip exited non-zero
    ├── StateDatabaseError                     the state built-in cannot open its SQLite file
    ├── HostRequired            (RuntimeError) a built-in that needs a Host was run without one
    └── MissingExtra            (ImportError)  a feature whose optional library is not installed
    PluginStalled               (BaseException) interrupts plugin code that blocks the event loop

``PluginStalled`` is no ``Exception``, like ``KeyboardInterrupt``, so a plugin's
``except Exception`` cannot swallow it. A third-party plugin raises its own
``KsiError`` subclasses the same way.

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
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ksi_host._manage.checks import Problem

__all__ = [
    "AlreadyRunning",
    "ChangeRefused",
    "ConfigError",
    "DaemonNotRunning",
    "DaemonUnreachable",
    "DeadlineExceeded",
    "HarnessError",
    "HostPackage",
    "HostRequired",
    "HostStateError",
    "InvalidEventName",
    "InvalidManifest",
    "InvalidPluginMetadata",
    "KsiError",
    "LockFileError",
    "ManifestError",
    "MetadataProblem",
    "MissingExtra",
    "NotInstalled",
    "NotKsiHost",
    "PipFailed",
    "PluginConfigInvalid",
    "PluginRegistrationError",
    "PluginStalled",
    "ProtocolError",
    "RequestTimeout",
    "SocketPathUnusable",
    "StateDatabaseError",
    "StopTimeout",
    "TransportNotAttached",
    "UnsafeRunDir",
    "UntrustedConfig",
    "WebSocketRequestFailed",
    "WebSocketUnavailable",
    "WorkerCrashed",
    "WorkerError",
    "WorkerProtocolError",
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


class InvalidManifest(KsiError, ValueError):
    """A ``ksi-plugin.toml`` that is not valid TOML or does not validate; lists every problem."""

    reference = "invalid-manifest"

    def __init__(self, *, where: str, problems: Sequence[str]) -> None:
        self.file = where
        self.problems = tuple(problems)
        count = len(self.problems)
        details = "\n".join(f"    - {problem}" for problem in self.problems)
        super().__init__(
            what=f"{where} is invalid ({count} problem{'s' * (count != 1)})\n{details}",
            where=where,
            hint="regenerate it from the code: ksi-host manifest MODULE -o "
            "PACKAGE/ksi-plugin.toml (see docs/MANIFEST.md)",
        )


class ManifestError(KsiError):
    """The plugin to write or check a manifest for could not be found, imported or described."""

    reference = "manifest"


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


class DeadlineExceeded(KsiError):
    """A call into a plugin awaited past its deadline and was cancelled.

    The dispatcher answers it as the ``TIMEOUT`` reply naming the plugin and its hook.
    """

    reference = "deadline-exceeded"

    def __init__(self, *, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            what=f"a call into a plugin did not finish within {seconds:g} s and was cancelled",
            where="a hook call into a plugin",
            hint="make the hook return sooner (start long work as a task), or raise "
            "[host.call_timeouts] <plugin> = <seconds>",
        )


class WorkerProtocolError(KsiError):
    """An isolated plugin's worker that did not finish its handshake, or speaks another protocol."""

    reference = "worker-protocol"

    def __init__(self, *, plugin: str, what: str, where: str | None = None, hint: str) -> None:
        self.plugin = plugin
        super().__init__(what=what, where=where, hint=hint)


class WorkerCrashed(KsiError):
    """An isolated plugin's worker died with calls in flight, or is restarting after it did.

    ``cause`` is the one-line account the reply and the log give (which worker, how it
    ended, which events it was handling).
    """

    reference = "worker-crashed"

    def __init__(self, *, plugin: str, cause: str) -> None:
        self.plugin = plugin
        self.cause = cause
        super().__init__(
            what=cause,
            where=f"the worker process of plugin {plugin!r}",
            hint="the host restarts it (see [host] restart_limit / restart_window); "
            "fix the plugin (see the log) if it keeps crashing",
        )


class WorkerError(KsiError):
    """Doctor's worker failed without any plugin import in flight: a broken ksi-host install."""

    reference = "doctor-worker"


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


class WebSocketUnavailable(KsiError):
    """The WebSocket port could not be listened on."""

    reference = "websocket-unavailable"

    def __init__(self, *, host: str, port: int, detail: str) -> None:
        self.host = host
        self.port = port
        self.detail = detail
        super().__init__(
            what=f"cannot listen for WebSocket connections: {detail}",
            where=f"{host}:{port} ([websocket] host and port)",
            hint="choose a free port in [websocket] port, or stop what listens there",
        )


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


class WebSocketRequestFailed(KsiError):
    """The WebSocket request could not be made or got no valid reply."""

    reference = "websocket-request-failed"

    def __init__(self, *, url: str, what: str, hint: str) -> None:
        self.url = url
        super().__init__(what=what, where=f"WebSocket {url}", hint=hint)


class NotKsiHost(KsiError):
    """The pid in a socket's lock is not (or no longer provably) a ksi-host daemon."""

    reference = "not-ksi-host"

    def __init__(self, *, socket_path: Path, pid: int, detail: str) -> None:
        self.socket_path = socket_path
        self.pid = pid
        self.detail = detail
        super().__init__(
            what=f"refusing to signal pid {pid}: {detail}",
            where=f"lock {socket_path}.lock",
            hint=f"check the process yourself (ps -p {pid} -o args) and stop it by hand",
        )


class StopTimeout(KsiError):
    """The daemon was asked to stop and is still running when the timeout ends."""

    reference = "stop-timeout"

    def __init__(self, *, socket_path: Path, pid: int, timeout: float) -> None:
        self.socket_path = socket_path
        self.pid = pid
        self.timeout = timeout
        super().__init__(
            what=f"the daemon (pid {pid}) is still running {timeout:g}s after SIGTERM",
            where=f"socket {socket_path}",
            hint=f"it may still be draining requests or stopping plugins (see its log); wait "
            f"with a larger --timeout, or end it at once with kill -KILL {pid}",
        )


def _environment() -> str:
    """Where a plugin-set command acts: the interpreter that runs ksi-host."""
    return "the environment of " + shlex.quote(sys.executable)


class ChangeRefused(KsiError):
    """An install, uninstall or sync that would break ksi-host or an installed plugin.

    Nothing was changed. ``problems`` says which package and which requirement;
    ``suggestions`` are commands that would work instead.
    """

    reference = "change-refused"

    def __init__(
        self,
        *,
        action: str,
        problems: Sequence[Problem],
        suggestions: Sequence[str] = (),
        forceable: bool = True,
    ) -> None:
        self.action = action
        self.problems = tuple(problems)
        self.suggestions = tuple(suggestions)
        self.forceable = forceable
        lines = "\n".join(f"    - {problem.message()}" for problem in self.problems)
        ways = [f"`{command}`" for command in self.suggestions]
        if forceable:
            ways.append("add --force to do it anyway (the host or those plugins may then fail)")
        super().__init__(
            what=f"refusing to {action}; nothing was changed:\n{lines}",
            where=_environment(),
            hint="; or ".join(ways) if ways else None,
        )


class NotInstalled(KsiError):
    """``uninstall`` of a distribution that is not installed here."""

    reference = "not-installed"

    def __init__(self, *, names: Sequence[str], plugins: Sequence[str]) -> None:
        self.names = tuple(names)
        self.plugins = tuple(plugins)
        known = ", ".join(self.plugins) or "none"
        super().__init__(
            what=f"not installed: {', '.join(self.names)}; nothing was changed",
            where=_environment(),
            hint=f"name a distribution as pip does; the plugin distributions here are: {known}",
        )


class HostPackage(KsiError):
    """``uninstall`` of ksi-host or a distribution it needs: never done, even with --force."""

    reference = "host-package"

    def __init__(self, *, name: str, needed_by: str | None) -> None:
        self.name = name
        self.needed_by = needed_by
        why = "it is ksi-host itself" if needed_by is None else f"{needed_by}"
        super().__init__(
            what=f"refusing to uninstall {name}: {why}; nothing was changed",
            where=_environment(),
            hint="ksi-host uninstall removes plugins only; to remove ksi-host and what it "
            "needs, use pip itself (`pip uninstall ksi-host`)",
        )


class LockFileError(KsiError):
    """A lock file that cannot be read, or a sync that did not reproduce it."""

    reference = "lock-file"

    def __init__(self, *, file: Path, what: str, hint: str) -> None:
        self.file = file
        super().__init__(what=what, where=str(file), hint=hint)


class PipFailed(KsiError):
    """pip exited non-zero; its own message is kept on ``.output``."""

    reference = "pip-failed"

    def __init__(self, *, command: Sequence[str], returncode: int, output: str) -> None:
        self.command = tuple(command)
        self.returncode = returncode
        self.output = output
        tail = "\n".join(f"    {line}" for line in output.strip().splitlines()[-15:])
        super().__init__(
            what=f"pip exited {returncode}" + (f":\n{tail}" if tail else ""),
            where=shlex.join(self.command),
            hint="fix what pip says above (a typo in a name, a missing --find-links folder, "
            "no network: pass --no-index --find-links DIR), then run the command again",
        )


class StateDatabaseError(KsiError):
    """The ``state`` built-in cannot open its database: not SQLite, unreadable, or misplaced."""

    reference = "state-database"

    def __init__(self, *, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            what=f"cannot open the state database: {problem}",
            where=str(path),
            hint="if the file is damaged or not yours, move it aside (a new one is created); "
            'or set path = "..." in the [state] section of the config',
        )


class HostRequired(KsiError, RuntimeError):
    """A built-in that works only inside a running ``Host`` was given a context without one.

    ``plugin`` is the built-in, ``needs`` what it takes from the host (the NATS bridge:
    the host's dispatch and its emit chain).
    """

    reference = "host-required"

    def __init__(self, *, plugin: str, needs: str) -> None:
        self.plugin = plugin
        self.needs = needs
        super().__init__(
            what=f"the {plugin!r} plugin needs {needs}, and no ksi_host Host runs it",
            where=f"the context given to {plugin}'s ksi_plugin_context",
            hint="run it under ksi-host run, a ksi_host Host or ksi_host.testing.PluginHarness, "
            "not on a bare PluginManager",
        )


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


class PluginStalled(BaseException):
    """Raised inside plugin code that blocked the event loop past its call's deadline.

    A ``BaseException``, like ``KeyboardInterrupt``, so a plugin's ``except Exception``
    does not swallow it; the watchdog (:mod:`ksi_host._watchdog`) raises it.
    """

    def __init__(self, plugin: str, hook: str, seconds: float, deadline: float) -> None:
        self.plugin = plugin
        self.hook = hook
        self.seconds = seconds
        self.deadline = deadline
        super().__init__(
            f"plugin {plugin!r} blocked the event loop in {hook} for {seconds:.1f} s, "
            f"past its {deadline:g} s deadline; interrupted"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.plugin, self.hook, self.seconds, self.deadline))
