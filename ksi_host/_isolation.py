"""Isolated plugins: each runs in its own worker process, behind a proxy the host registers.

``[host] isolated = ["name", ...]`` (``"*"``: every plugin but the built-ins) runs those
plugins out of process. The host never imports them: doctor's isolated import
(:mod:`ksi_host._doctor.isolate`) reads their metadata and hooks, and the plan holds a
:class:`WorkerPlugin` in their place, a proxy that implements exactly the hooks the
plugin does and forwards each call over a private socket (:mod:`ksi_host._wire`) to
the worker (:mod:`ksi_host._worker`). The worker's ``context.emit`` comes back to the
host's bus; its subscriptions become listeners on the host's bus that forward the
events to it (removed when it unsubscribes or dies); its ``get_event_history`` is
answered on a second line; its config is the host's.

A worker that dies (a segfault, ``os._exit``, the memory limit) is noticed at once
(its end of the socket closes); the calls it owed are answered ``PLUGIN_CRASHED`` with
the cause (the signal or exit code, and the events it was handling), and it is
started again after a backoff (0.1 s, doubling up to 5 s). A call past its deadline
(``[host] call_timeout``) gets ``TIMEOUT`` and the worker is killed and restarted the
same way. More than ``restart_limit`` restarts within ``restart_window`` seconds and
the plugin stays failed with the last cause, as ``plugin:list`` shows. Each worker
limits itself to ``worker_memory_mb`` of address space and ``worker_cpu_seconds`` of
CPU time (``resource.setrlimit``) when they are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ksi_host._config import HostSection
from ksi_host._dispatch import emit_chain
from ksi_host._doctor.isolate import import_isolated
from ksi_host._doctor.outcome import outcome
from ksi_host._doctor.worker import candidate_to_wire
from ksi_host._plan import Candidate, Exclusion, PluginSpec, Reason
from ksi_host._signal_name import signal_name
from ksi_host._wire import PROTOCOL_VERSION, read_message, write_message
from ksi_host._worker_services import WorkerServices
from ksi_host._workers import LIVE
from ksi_host.errors import KsiError, PluginConfigInvalid, WorkerCrashed, WorkerProtocolError
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import canonical_name
from ksi_host.replies import ErrorCode, error_reply

__all__ = [
    "WorkerPlugin",
    "describe_isolated",
    "is_isolated",
]

logger: Final = logging.getLogger("ksi_host.isolation")

WORKER_COMMAND: Final = (sys.executable, "-m", "ksi_host._worker")
_BACKOFF_START: Final = 0.1
_BACKOFF_MAX: Final = 5.0
_EXIT_GRACE: Final = 2.0
_HANDSHAKE_TIMEOUT: Final = 30.0


def is_isolated(candidate: Candidate, isolated: Collection[str]) -> bool:
    """Whether ``[host] isolated`` asks for this candidate to run in a worker."""
    if candidate.origin.kind == "builtin" or not isolated:
        return False
    if "*" in isolated:
        return True
    wanted = {canonical_name(name) for name in isolated}
    try:
        return canonical_name(candidate.name_hint) in wanted
    except ValueError:
        return False


def describe_isolated(
    candidates: Sequence[Candidate], host: HostSection, sections: Mapping[str, Any]
) -> tuple[list[PluginSpec], list[Exclusion]]:
    """Read isolated candidates' metadata out of process; proxies stand in for the plugins.

    Their config sections (``sections``, by canonical name) are checked there as the plan
    checks an in-process plugin's, so a bad one gets the same ``config-invalid`` verdict.
    """
    specs: list[PluginSpec] = []
    excluded: list[Exclusion] = []
    if not candidates:
        return specs, excluded
    results = import_isolated(
        candidates,
        disabled={},
        sections=sections,
        trust_paths=host.trust_paths,
        timeout=host.startup_timeout,
    )
    for candidate, result in zip(candidates, results, strict=True):
        found = outcome(candidate, result)
        if found.spec is None:
            assert found.exclusion is not None
            excluded.append(found.exclusion)
            continue
        hooks = tuple(result.get("hooks", ())) if isinstance(result, dict) else ()
        proxy = WorkerPlugin.for_hooks(hooks)(candidate, found.spec, host)
        specs.append(
            PluginSpec(
                plugin=proxy,
                metadata=found.spec.metadata,
                capabilities=found.spec.capabilities,
                origin=found.spec.origin,
            )
        )
    return specs, excluded


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    hook: str
    event: str | None


class _Process:
    """One running worker: its process, its channel, the calls it owes, what it is served."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        services: WorkerServices,
    ) -> None:
        self.proc = proc
        self.reader = reader
        self.writer = writer
        self.services = services
        self.pending: dict[int, _Pending] = {}
        self.next_id = 0
        self.killed_because: str | None = None
        self.reading: asyncio.Task[None] | None = None
        self.answering: asyncio.Task[None] | None = None

    def close(self) -> None:
        self.services.close()


class WorkerPlugin(BasePlugin):
    """The host-side stand-in of an isolated plugin; see the module docstring."""

    command: tuple[str, ...] = WORKER_COMMAND

    def __init__(self, candidate: Candidate, spec: PluginSpec, host: HostSection) -> None:
        super().__init__(metadata=spec.metadata, capabilities=spec.capabilities)
        self.candidate: Final = candidate
        self.settings: Final = host
        self.deadline: Final = host.call_timeout_for(spec.name)
        self.failure: Reason | None = None
        self.restarts = 0
        self._restarted_at: deque[float] = deque()
        self._process: _Process | None = None
        self._context: Any = None
        self._section: dict[str, Any] | None = None
        self._stopping = False
        self._last_crash = ""
        self._tasks: set[asyncio.Future[Any]] = set()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @classmethod
    def for_hooks(cls, hooks: Iterable[str]) -> type[WorkerPlugin]:
        """A proxy class implementing exactly ``hooks`` (so it is called only for those)."""
        methods = {hook: _FORWARDERS[hook] for hook in hooks if hook in _FORWARDERS}
        methods["ksi_plugin_context"] = _FORWARDERS["ksi_plugin_context"]
        methods["ksi_shutdown"] = _FORWARDERS["ksi_shutdown"]
        return type("WorkerPlugin", (cls,), methods)

    @property
    def pid(self) -> int | None:
        return self._process.proc.pid if self._process is not None else None

    # -- the lifecycle -------------------------------------------------------------------

    async def spawn(self, context: Any, section: Mapping[str, Any] | None) -> None:
        """Start the worker (the host does it before the start hooks, outside their deadline).

        ``section`` is the plugin's config section as the host found it
        (``HostConfig.plugin_section``): the worker validates it against the plugin's
        ``config_model`` and raises :class:`PluginConfigInvalid` here if it does not fit.
        """
        self._context = context
        self._section = None if section is None else dict(section)
        await self._spawn()

    async def _spawn(self) -> None:
        parent, child = socket.socketpair()
        query_parent, query_child = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                str(child.fileno()),
                str(query_child.fileno()),
                pass_fds=(child.fileno(), query_child.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            query_parent.close()
            raise
        finally:
            child.close()
            query_child.close()
        LIVE.add(proc.pid)
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        query_reader, query_writer = await asyncio.open_unix_connection(sock=query_parent)
        process = _Process(
            proc, reader, writer, WorkerServices(self._context, writer, query_writer)
        )
        write_message(
            writer,
            {
                "op": "hello",
                "protocol": PROTOCOL_VERSION,
                "candidate": candidate_to_wire(self.candidate),
                "sys_path": sys.path,
                "config": self._context.get("config", {}) if self._context else {},
                "section": self._section,
                "memory_mb": self.settings.worker_memory_mb,
                "cpu_seconds": self.settings.worker_cpu_seconds,
                "call_timeout": self.deadline,
            },
        )
        try:
            ready = await asyncio.wait_for(read_message(reader), _HANDSHAKE_TIMEOUT)
        except (asyncio.TimeoutError, ValueError) as exc:
            await self._reap(process, "kill")
            raise WorkerProtocolError(
                plugin=self.name,
                what=f"the worker of plugin {self.name!r} did not finish its handshake: {exc}",
                hint="run `ksi-host doctor` to check the plugin imports",
            ) from None
        if ready is None or ready.get("op") != "ready":
            await self._reap(process, "wait")
            invalid = (ready or {}).get("config_invalid")
            if invalid is not None:
                raise PluginConfigInvalid(
                    plugin=self.name, problems=[(key, why) for key, why in invalid]
                )
            detail = (ready or {}).get("message") or _exit_cause(process.proc.returncode)
            raise WorkerProtocolError(
                plugin=self.name,
                what=f"the worker of plugin {self.name!r} failed to start: {detail}",
                where=" ".join(self.command),
                hint="see the traceback above; run `ksi-host doctor` for the plugin's problems",
            )
        if ready.get("protocol") != PROTOCOL_VERSION:
            await self._reap(process, "kill")
            raise WorkerProtocolError(
                plugin=self.name,
                what=f"the worker of plugin {self.name!r} speaks protocol "
                f"{ready.get('protocol')}, this host {PROTOCOL_VERSION}",
                where=" ".join(self.command),
                hint="the worker runs another ksi-host install: run the daemon and its "
                "workers from the same environment",
            )
        self._process = process
        process.reading = asyncio.ensure_future(self._read(process))
        process.answering = asyncio.ensure_future(self._answer(process, query_reader))
        logger.info("plugin %r runs in worker pid %d", self.name, proc.pid)

    async def _stop(self) -> None:
        """``ksi_shutdown`` in the worker, then close its channel: it exits at EOF."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        try:
            await self.call("ksi_shutdown", {})
        except WorkerCrashed as exc:
            logger.warning("plugin %r could not shut down: %s", self.name, exc.cause)
        finally:
            process.close()

    async def _reap(self, process: _Process, how: str) -> None:
        if how == "kill" and process.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.proc.kill()
        try:
            await asyncio.wait_for(process.proc.wait(), _EXIT_GRACE)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.proc.kill()
            await process.proc.wait()
        LIVE.discard(process.proc.pid)
        process.close()

    # -- calls ---------------------------------------------------------------------------

    async def call(self, hook: str, args: dict[str, Any], event: str | None = None) -> Any:
        """Forward one hook call; a crash is raised as ``WorkerCrashed``, a deadline kills."""
        process = await self._running()
        process.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        process.pending[process.next_id] = _Pending(future, hook, event)
        write_message(
            process.writer,
            {
                "op": "call",
                "id": process.next_id,
                "hook": hook,
                "args": args,
                "chain": emit_chain(),  # its emits nest in ours (EMIT_TOO_DEEP)
            },
        )
        try:
            return await future
        except asyncio.CancelledError:
            what = f"{hook} on {event!r}" if event else hook
            self._kill(process, f"it did not finish {what} within its deadline")
            raise

    async def _running(self) -> _Process:
        if self.failure is not None:
            raise WorkerCrashed(plugin=self.name, cause=self.failure.message)
        if self._process is None or self._process.killed_because is not None:
            raise WorkerCrashed(
                plugin=self.name,
                cause=f"plugin {self.name!r} is restarting after: {self._last_crash}",
            )
        return self._process

    def _kill(self, process: _Process, why: str) -> None:
        if process.killed_because is None:
            process.killed_because = why
            logger.error(
                "killing the worker of plugin %r (pid %d): %s", self.name, process.proc.pid, why
            )
            with contextlib.suppress(ProcessLookupError):
                process.proc.kill()

    async def _read(self, process: _Process) -> None:
        """Answer the worker's requests and settle its answers until it is gone."""
        try:
            while True:
                message = await read_message(process.reader)
                if message is None:
                    break
                op = message.get("op")
                if op == "emit":
                    self._background(process.services.emit(message))
                elif op in ("result", "error"):
                    self._settle(process, message)
                elif op == "subscribe":
                    process.services.subscribe(message["sub"], message["pattern"])
                elif op == "unsubscribe":
                    process.services.unsubscribe(message["sub"])
        except (ValueError, KeyError, TypeError) as exc:
            self._kill(process, f"it broke the protocol: {exc!r}")
        await process.proc.wait()
        LIVE.discard(process.proc.pid)
        process.close()
        if self._stopping or self._process is not process:
            return
        self._crashed(process)

    async def _answer(self, process: _Process, reader: asyncio.StreamReader) -> None:
        try:
            await process.services.answer(reader)
        except ValueError as exc:
            self._kill(process, f"it broke the protocol: {exc}")

    def _settle(self, process: _Process, message: dict[str, Any]) -> None:
        pending = process.pending.pop(message["id"], None)
        if pending is None or pending.future.done():
            return
        if message["op"] == "result":
            pending.future.set_result(message.get("value"))
            return
        logger.error(
            "plugin %r (worker pid %d) raised in %s:\n%s",
            self.name,
            process.proc.pid,
            pending.hook,
            message.get("traceback", ""),
        )
        pending.future.set_exception(
            RuntimeError(f"{message.get('type')}: {message.get('message')}")
        )

    def _crashed(self, process: _Process) -> None:
        events = sorted({p.event for p in process.pending.values() if p.event})
        cause = (
            f"was killed: {process.killed_because}"
            if process.killed_because
            else _exit_cause(process.proc.returncode)
        )
        doing = f" while handling {', '.join(map(repr, events))}" if events else ""
        message = f"the worker of plugin {self.name!r} (pid {process.proc.pid}) {cause}{doing}"
        logger.error("%s", message)
        self._last_crash = message
        for pending in process.pending.values():
            if not pending.future.done():
                pending.future.set_exception(WorkerCrashed(plugin=self.name, cause=message))
        process.pending.clear()
        self._process = None
        now = time.monotonic()
        window = self.settings.restart_window
        while self._restarted_at and now - self._restarted_at[0] > window:
            self._restarted_at.popleft()
        if len(self._restarted_at) >= self.settings.restart_limit:
            self.failure = Reason(
                "worker-crashed",
                f"{message}; it crashed {len(self._restarted_at) + 1} times within "
                f"{window:g} s, so it is not restarted again",
                "fix the plugin (see the log), then restart the daemon; or raise [host] "
                "restart_limit / restart_window",
            )
            return
        self._restarted_at.append(now)
        delay = min(_BACKOFF_MAX, _BACKOFF_START * 2 ** (len(self._restarted_at) - 1))
        self._background(self._restart(delay, message))

    async def _restart(self, delay: float, cause: str) -> None:
        logger.warning("restarting plugin %r in %.1f s (after: %s)", self.name, delay, cause)
        await asyncio.sleep(delay)
        if self._stopping:
            return
        try:
            await self._spawn()
        except KsiError as exc:
            self.failure = Reason(
                "worker-crashed",
                f"{cause}; its restart failed: {exc.what}",
                exc.hint or "fix the plugin (see the log), then restart the daemon",
            )
            return
        try:
            await self.call("ksi_plugin_context", {})
            await self.call("ksi_startup", {})
        except (WorkerCrashed, RuntimeError) as exc:
            # A crash is handled (restarted or given up) as any other; a hook that raised
            # ends this worker, which is then handled the same way.
            if self._process is not None:
                why = exc.cause if isinstance(exc, WorkerCrashed) else exc
                self._kill(self._process, f"its restart failed: {why}")
            return
        self.restarts += 1

    def discard(self) -> None:
        """The host dropped the plugin (it failed to start): end its worker now."""
        self._stopping = True
        if self._process is not None:
            self._kill(self._process, "the host dropped the plugin")
            LIVE.discard(self._process.proc.pid)

    def answer_crash(self, exc: WorkerCrashed) -> dict[str, Any]:
        """The reply to a call the worker could not answer."""
        return error_reply(
            ErrorCode.PLUGIN_CRASHED,
            f"{exc.cause}; it is being restarted" if self.failure is None else self.failure.message,
            plugin=self.name,
        )


def _exit_cause(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        return f"was killed by {signal_name(-code)}"
    return f"exited with code {code}"


# -- the forwarding hook implementations ------------------------------------------------------


@hookimpl
async def _plugin_context(self: WorkerPlugin, context: Any) -> None:
    await self.call("ksi_plugin_context", {})


@hookimpl
async def _startup(self: WorkerPlugin) -> Any:
    return await self.call("ksi_startup", {})


@hookimpl
async def _shutdown(self: WorkerPlugin) -> Any:
    await self._stop()


@hookimpl
async def _filter(self: WorkerPlugin, event_name: str, data: dict[str, Any]) -> Any:
    return await _check(self, "ksi_filter_event", event_name, data)


@hookimpl
async def _validate(self: WorkerPlugin, event_name: str, data: dict[str, Any]) -> Any:
    return await _check(self, "ksi_validate_event", event_name, data)


async def _check(self: WorkerPlugin, hook: str, event_name: str, data: dict[str, Any]) -> Any:
    """A filter or validate hook's answer; a crash fails the hook, as a raising hook does."""
    try:
        return await self.call(hook, {"event_name": event_name, "data": data}, event_name)
    except WorkerCrashed as exc:
        raise RuntimeError(exc.cause) from None


@hookimpl
async def _handle(self: WorkerPlugin, event_name: str, data: dict[str, Any], context: Any) -> Any:
    try:
        return await self.call(
            "ksi_handle_event", {"event_name": event_name, "data": data}, event_name
        )
    except WorkerCrashed as exc:
        return self.answer_crash(exc)


@hookimpl
async def _metrics(self: WorkerPlugin, metrics: dict[str, Any]) -> Any:
    return await self.call("ksi_metrics_collected", {"metrics": metrics})


_FORWARDERS: Final[dict[str, Callable[..., Any]]] = {  # named after their hooks below
    "ksi_plugin_context": _plugin_context,
    "ksi_startup": _startup,
    "ksi_shutdown": _shutdown,
    "ksi_filter_event": _filter,
    "ksi_validate_event": _validate,
    "ksi_handle_event": _handle,
    "ksi_metrics_collected": _metrics,
}

for _hook, _function in _FORWARDERS.items():
    _function.__name__ = _function.__qualname__ = _hook
