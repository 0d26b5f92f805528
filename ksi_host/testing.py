"""Test a plugin the way the daemon runs it: a real host, the real pipeline, no socket.

Calling ``manager.pm.hook.ksi_handle_event(...)`` yourself skips what the host does
around a handler: routing by declared namespaces and commands, filters, validators,
awaiting coroutines, the plugin's validated ``config_model`` and its context. A
:class:`PluginHarness` builds a real host from plugin objects instead (their metadata,
dependencies and ``config_model`` checked as at ``ksi-host run``), starts them in
dependency order, and answers :meth:`~PluginHarness.send` exactly as the daemon
answers a socket client::

    async with PluginHarness(WeatherPlugin(), config={"weather": {"city": "Oslo"}}) as h:
        assert await h.send("weather:ping") == {"status": "success", "result": {...}}
        assert h.status("weather").status == "running"
        assert h.emitted == [Emitted("weather:updated", {"city": "Oslo"})]

:class:`SyncPluginHarness` is the same for tests that are not async, and the pytest
plugin this package registers gives a ``ksi_harness`` fixture that starts one and
stops it after the test::

    def test_ping(ksi_harness):
        h = ksi_harness(WeatherPlugin())
        assert h.send("weather:ping")["result"] == {"reply": "pong"}

With ``with_builtins=True`` the built-in plugins (``system:health``, ``state:*``, ...)
run too, except the socket transport (``send`` stands in for its clients); the state
plugin then keeps its database in a temporary folder unless the config's ``[state]
path`` says otherwise.

``trace=True`` (or ``trace=["weather"]`` for some namespaces) logs every hook call and
dispatch stage to the ``ksi_host.trace`` logger, as ``ksi-host run --trace`` does;
pytest shows those lines with a failing test (``KSI_TRACE=1 pytest`` does the same
for every harness).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import tempfile
import threading
from collections.abc import Awaitable, Collection, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from ksi_host._config import HostConfig, config_from_mapping
from ksi_host._describe import describe
from ksi_host._discover import builtin_candidates
from ksi_host._lifecycle import Host
from ksi_host._plan import Candidate, Exclusion, LoadPlan, PluginSpec
from ksi_host._protocol import ProtocolFailure, encode_reply, parse_request
from ksi_host._resolve import resolve
from ksi_host._running import Running
from ksi_host._trace import TraceSettings
from ksi_host._vet import vet
from ksi_host.errors import HarnessError
from ksi_host.plugin_base import TransportPlugin
from ksi_host.replies import error_reply
from ksi_host.status import Origin, PluginStatus, Reason

__all__ = [
    "Emitted",
    "HarnessError",
    "HarnessFactory",
    "PluginHarness",
    "SyncPluginHarness",
    "harness_factory",
]

T = TypeVar("T")

_ORIGIN: Final = "PluginHarness"


class Emitted(NamedTuple):
    """An event a plugin emitted (``context.emit`` or the bus), as the plugin sent it."""

    event: str
    data: Any


class PluginHarness(Running):
    """An async context manager running ``plugins`` on a real host; see the module docstring.

    ``config`` is the whole configuration as the TOML file would give it (a mapping
    of tables, e.g. ``{"my_plugin": {"setting": 1}, "host": {"startup_timeout": 5}}``)
    or a ready ``HostConfig``; it is checked as the file is. Plugins that cannot load
    (a missing dependency, metadata that does not validate, a config section its
    ``config_model`` refuses, a failing ``ksi_startup``) do not stop the harness:
    :meth:`status` says why, as ``ksi-host plugins`` would.
    """

    def __init__(
        self,
        *plugins: object,
        config: Mapping[str, Any] | HostConfig | None = None,
        with_builtins: bool = False,
        trace: bool | Collection[str] = False,
    ) -> None:
        if not plugins and not with_builtins:
            raise HarnessError(
                what="PluginHarness() was given no plugins",
                where="PluginHarness(*plugins)",
                hint="pass the plugin objects to test, e.g. PluginHarness(MyPlugin()), "
                "or with_builtins=True to run the built-in plugins",
            )
        self.plugins: Final = plugins
        self.with_builtins: Final = with_builtins
        self.trace: Final = _trace_settings(trace)
        """What the host traces (``trace=True``, or some namespaces); else ``KSI_TRACE`` decides."""
        self.emitted: Final[list[Emitted]] = []
        """Every event the plugins emitted, in order, from start to stop."""
        self._config = config
        self._host: Host | None = None
        self._state_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def host(self) -> Host:
        """The running host (its ``plan``, ``bus``, ``config``), for what the harness lacks."""
        if self._host is None:
            raise HarnessError(
                what="the harness is not running",
                where="PluginHarness",
                hint="use it as `async with PluginHarness(...) as h:` (or call start() first)",
            )
        return self._host

    async def start(self) -> None:
        """Describe, resolve and start the plugins, dependencies first."""
        if self._host is not None:
            raise HarnessError(
                what="the harness is already running",
                where="PluginHarness.start()",
                hint="a harness starts once; create a new PluginHarness for a fresh host",
            )
        config = self._host_config()
        host = Host(self._plan(config), config, on_emit=self._record, trace=self.trace)
        self._host = host
        await host.start()

    async def stop(self) -> None:
        """Stop every plugin in reverse order; safe to call twice."""
        if self._host is not None:
            await self._host.stop()
        if self._state_dir is not None:
            self._state_dir.cleanup()
            self._state_dir = None

    async def send(self, event_name: str, data: Mapping[str, Any] | None = None) -> Any:
        """Send one event as a socket client would, and return the reply's ``data``.

        The request goes through the wire format (so ``data`` must be JSON), then
        filter -> validate -> handle, and the answer comes back through JSON: a
        tuple arrives as a list, and an answer the socket could not send arrives as
        the ``INTERNAL_ERROR`` a client would get.
        """
        host = self.host
        try:
            line = json.dumps({"event": event_name, "data": {} if data is None else data})
        except (TypeError, ValueError) as exc:
            raise HarnessError(
                what=f"the data sent with {event_name!r} is not JSON: {exc}",
                where="PluginHarness.send()",
                hint="send what a socket client can: objects, arrays, strings, numbers, "
                "true/false and null",
            ) from None
        request = parse_request(line.encode())
        if isinstance(request, ProtocolFailure):
            answer: Any = error_reply(request.code, request.message)
        else:
            answer = await host.dispatch(request.event, request.data)
        return json.loads(encode_reply(event_name, None, answer))["data"]

    def status(self, name: str) -> PluginStatus:
        """Plugin ``name``'s status: running, failed, stopped or excluded, with the reason."""
        statuses = self.host.status()
        for status in statuses:
            if name in (status.name, status.key):
                return status
        known = ", ".join(repr(status.name) for status in statuses) or "none"
        raise HarnessError(
            what=f"the harness has no plugin named {name!r}",
            where="PluginHarness.status()",
            hint=f"the plugins it knows are {known} (by PluginMetadata.name)",
        )

    async def metrics(self) -> dict[str, Any]:
        """Every plugin's ``ksi_metrics_collected``, plus the host's own under ``"ksi_host"``."""
        return await self.host.metrics()

    def _record(self, event_name: str, data: Any) -> None:
        self.emitted.append(Emitted(event_name, data))

    def _host_config(self) -> HostConfig:
        raw = self._config
        if isinstance(raw, HostConfig):
            config = raw
        else:
            config = config_from_mapping(raw or {}, source="PluginHarness(config=...)")
        if self.with_builtins and config.plugin_section("state") is None:
            self._state_dir = tempfile.TemporaryDirectory(prefix="ksi-harness-")
            state = {"path": f"{self._state_dir.name}/state.sqlite3"}
            config = config.model_copy(update={"state": state})
        return config

    def _plan(self, config: HostConfig) -> LoadPlan:
        candidates = [
            Candidate(
                name_hint=_name_of(plugin, index),
                origin=Origin("object", f"{_ORIGIN} argument {index}"),
                plugin=plugin,
            )
            for index, plugin in enumerate(self.plugins, start=1)
        ]
        if self.with_builtins:
            candidates.extend(builtin_candidates())
        described = vet(describe(candidates), config.sections_by_key())
        specs = [spec for spec in described.specs if not _builtin_transport(spec)]
        transports = [
            Exclusion(
                spec.name,
                spec.origin,
                Reason(
                    "disabled",
                    f"the built-in transport {spec.name!r} does not run under PluginHarness",
                    "the harness's send() stands in for a client of the socket",
                ),
                spec,
            )
            for spec in described.specs
            if _builtin_transport(spec)
        ]
        return resolve(
            specs,
            excluded=(*described.excluded, *transports),
            service_choices=config.host.services,
            command_choices=config.host.commands,
        )


def _builtin_transport(spec: PluginSpec) -> bool:
    """A built-in transport would serve the user's real socket: the harness leaves it out."""
    return spec.origin.kind == "builtin" and isinstance(spec.plugin, TransportPlugin)


def _name_of(plugin: object, index: int) -> str:
    name = getattr(getattr(plugin, "metadata", None), "name", None)
    return name if isinstance(name, str) else f"plugin {index}"


class SyncPluginHarness:
    """:class:`PluginHarness` for tests that are not async: the host runs in its own thread.

    ``with SyncPluginHarness(MyPlugin()) as h: h.send("my:ping")``. The host's event
    loop keeps running between calls, so tasks a plugin started go on meanwhile, as
    in the daemon; :meth:`run` awaits any coroutine on that loop.
    """

    def __init__(
        self,
        *plugins: object,
        config: Mapping[str, Any] | HostConfig | None = None,
        with_builtins: bool = False,
        timeout: float = 60.0,
        trace: bool | Collection[str] = False,
    ) -> None:
        self.harness: Final = PluginHarness(
            *plugins, config=config, with_builtins=with_builtins, trace=trace
        )
        self.timeout: Final = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SyncPluginHarness:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def emitted(self) -> list[Emitted]:
        """Every event the plugins emitted, in order."""
        return self.harness.emitted

    @property
    def host(self) -> Host:
        """The running host (see :attr:`PluginHarness.host`)."""
        return self.harness.host

    def start(self) -> None:
        """Start the host's loop in a thread, then the plugins on it."""
        if self._loop is not None:
            raise HarnessError(
                what="the harness is already running",
                where="SyncPluginHarness.start()",
                hint="a harness starts once; create a new SyncPluginHarness for a fresh host",
            )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ksi-harness", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self.run(self.harness.start())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the plugins in reverse order, then the loop; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self.run(self.harness.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self.timeout)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on the host's loop and return its result (or raise its error)."""
        if self._loop is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited: say so once, here, not as a warning later
            raise HarnessError(
                what="the harness is not running",
                where="SyncPluginHarness",
                hint="use it as `with SyncPluginHarness(...) as h:` (or call start() first)",
            )
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), self._loop)
        return future.result(self.timeout)

    def send(self, event_name: str, data: Mapping[str, Any] | None = None) -> Any:
        """:meth:`PluginHarness.send`, waited for."""
        return self.run(self.harness.send(event_name, data))

    def status(self, name: str) -> PluginStatus:
        """:meth:`PluginHarness.status`."""
        return self.harness.status(name)

    def metrics(self) -> dict[str, Any]:
        """:meth:`PluginHarness.metrics`, waited for."""
        return self.run(self.harness.metrics())


@contextlib.contextmanager
def harness_factory() -> Iterator[HarnessFactory]:
    """What the ``ksi_harness`` fixture yields: start harnesses; all stop on exit, last first."""
    started: list[SyncPluginHarness] = []

    def start(
        *plugins: object,
        config: Mapping[str, Any] | None = None,
        with_builtins: bool = False,
        trace: bool | Collection[str] = False,
    ) -> SyncPluginHarness:
        harness = SyncPluginHarness(
            *plugins, config=config, with_builtins=with_builtins, trace=trace
        )
        harness.start()
        started.append(harness)
        return harness

    try:
        yield start
    finally:
        for harness in reversed(started):
            harness.stop()


class HarnessFactory(Protocol):
    """The ``ksi_harness`` fixture: call it to get a started :class:`SyncPluginHarness`."""

    def __call__(
        self,
        *plugins: object,
        config: Mapping[str, Any] | None = None,
        with_builtins: bool = False,
        trace: bool | Collection[str] = False,
    ) -> SyncPluginHarness: ...


def _trace_settings(trace: bool | Collection[str]) -> TraceSettings | None:
    """``True``: trace everything; namespaces: those; ``False``: whatever ``KSI_TRACE`` says."""
    if trace is True:
        return TraceSettings(enabled=True)
    if trace is False or not trace:
        return None
    return TraceSettings().limited_to([trace] if isinstance(trace, str) else list(trace))


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
