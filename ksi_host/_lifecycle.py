"""Start the plugins of a plan in order, stop them in reverse, and contain each one's failures.

``await host.start()`` runs three passes over the plan, each in load order:
register with pluggy (the plan already checked hooks and config, see
:mod:`ksi_host._vet`), ``ksi_plugin_context``, then ``ksi_startup``. A plugin that fails
any pass (raises, or does not finish within ``[host] startup_timeout``) is
unregistered and marked failed with its traceback, and so is every plugin that
needs it (``dependency-failed``, naming the chain); one that only starts after it
(``after_dependencies``) still starts, and the others go on. ``await host.stop()``
calls ``ksi_shutdown`` in reverse load order, each within ``[host]
shutdown_timeout``; a failure is logged and kept as the stopped plugin's reason,
and the others carry on. A host runs once: start, then stop.

A plugin described by a ``lazy`` manifest is not imported at start: it shows as
``lazy`` until the first event it declares arrives, which activates it (import,
register, ``ksi_plugin_context``, ``ksi_startup``, within ``startup_timeout``) and
then reaches it. One that fails to activate is ``failed`` and answers that event,
and the later ones it declares, with ``UNAVAILABLE`` naming it and why. Its import and
start hooks run under the crash-safe start's marker (:class:`StartWatch`), so one that
kills the daemon is quarantined as at start-up. A lazy
plugin that a plugin started at start-up needs, that declares no events (it sees
them all) or that implements a hook seeing every event, is started with the others.

A timeout cancels a hook that awaits; a hook that blocks the event loop
(``time.sleep``, a busy loop) is noticed by the watchdog (:mod:`ksi_host._watchdog`,
``[host] watchdog_threshold``), logged with the plugin and its stack, and interrupted
at the same deadline when the host runs on the main thread.

Each plugin gets its own :class:`~ksi_host.PluginContext` (``ksi_plugin_context``
and its handlers see the same one): the whole config read-only, its own section
validated as ``settings``, the bus, ``emit``, a logger and a read-only view of the host.

>>> import asyncio
>>> from ksi_host._plan import LoadPlan
>>> async def main():
...     async with Host(LoadPlan(order=())) as host:
...         return await host.dispatch("system:health", {})
>>> asyncio.run(main())["error"]["code"]
'NO_HANDLER'
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Protocol

import pluggy

from ksi_host._bus import EventBus
from ksi_host._config import HostConfig, plugin_settings
from ksi_host._deadline import within
from ksi_host._describe import import_described
from ksi_host._dispatch import Fallback
from ksi_host._plan import (
    LoadPlan,
    PluginSpec,
    Reason,
    ReasonCode,
    Status,
    exclusion_status,
)
from ksi_host._reload import (
    InstalledSince,
    PlanChange,
    code_stamp,
    code_stamps,
    diff_plans,
    forget_changed_modules,
    keep_workers,
)
from ksi_host._running import Running
from ksi_host._tasks import TaskKeeper
from ksi_host._trace import Tracer, TraceSettings, make_dispatcher
from ksi_host._vet import config_reason, vet_one
from ksi_host._watchdog import Watchdog
from ksi_host._workers import is_worker
from ksi_host.context import HostView, PluginContext
from ksi_host.errors import (
    HostStateError,
    KsiError,
    PluginConfigInvalid,
    PluginRegistrationError,
    PluginStalled,
)
from ksi_host.plugin_base import TransportPlugin
from ksi_host.plugin_manager import KsiPluggyManager, PluginManager
from ksi_host.plugin_types import PluginCapabilities
from ksi_host.replies import ErrorCode, error_reply
from ksi_host.status import PluginStatus

if TYPE_CHECKING:
    from ksi_host._isolation import WorkerPlugin
    from ksi_host._schema import PluginEntry

__all__ = ["Host", "Planner", "StartWatch"]

logger: Final = logging.getLogger("ksi_host.lifecycle")

Planner = Callable[[Sequence[str]], LoadPlan]
"""Builds the host's plan again, with these plugin paths added: what ``reload`` runs."""


class StartWatch(Protocol):
    """Told whose start is under way (the crash-safe start's marker, :mod:`ksi_host._quarantine`).

    ``starting`` before a plugin's lazy import or start hook runs (``event``: the event
    that activated it lazily), ``finished`` after, ``done`` when a start-up, a reload or
    an activation is over.
    """

    def starting(self, spec: PluginSpec, stage: str, event: str | None = None) -> None: ...

    def finished(self, spec: PluginSpec) -> None: ...

    def done(self) -> None: ...


class Host(Running):
    """The running set of plugins of one :class:`LoadPlan`, and the door events come in by.

    ``on_emit(event_name, data)`` is told of every event a plugin emits (through
    ``context.emit`` or the bus), before it is dispatched; ``ksi_host.testing`` records them.
    """

    def __init__(
        self,
        plan: LoadPlan,
        config: HostConfig | None = None,
        *,
        history_size: int | None = None,
        trace: TraceSettings | None = None,
        on_emit: Callable[[str, Any], object] | None = None,
        planner: Planner | None = None,
        installed_since: InstalledSince | None = None,
        marker: StartWatch | None = None,
    ) -> None:
        """``trace`` defaults to what ``KSI_TRACE`` says (see :mod:`ksi_host._trace`)."""
        self.plan = plan
        self.tracer: Final = Tracer(trace if trace is not None else TraceSettings.from_env())
        self._on_emit: Final = on_emit
        self._planner: Final = planner
        self._extra_paths: list[str] = []
        self._reloading: Final = asyncio.Lock()
        self._stamps = code_stamps(plan)
        self._installed_since: Final = installed_since
        self._marker = marker
        self.config: Final = config if config is not None else HostConfig()
        self.manager: Final = PluginManager()
        self.bus: Final = EventBus(
            self._emitted,
            history_size=self.config.host.history_size if history_size is None else history_size,
            history_bytes=self.config.host.history_bytes,
        )
        self._config_dict: Final = self.config.as_context_dict()
        # Each plugin's section by key, as the plan looks it up: sections_by_key() once,
        # not once per plugin (plugin_section() rebuilds it on every call).
        self._sections: Final = self.config.sections_by_key()
        self._view: Final = HostView(self.status, self.metrics, self.plugin_list, owner=self)
        # A plugin's context is made the first time it is asked for (many plugins are
        # never called): with the settings its registration validated.
        self._contexts: dict[str, PluginContext] = {}
        self._settings: dict[str, Any] = {}
        self._tasks: Final = TaskKeeper()
        self._dispatcher: Final = make_dispatcher(
            self.manager.pm,
            self.context_for,
            self.bus,
            tracer=self.tracer,
            max_emit_depth=self.config.host.max_emit_depth,
            explain_unhandled=self._why_unhandled,
            command_owners=plan.commands,
            call_timeout=self.config.host.call_timeout_for,
        )
        self.manager.pm.on_change(self._dispatcher.invalidate)
        # Each plugin's spec as it is now: a manifest's spec is replaced once imported.
        self._specs: dict[str, PluginSpec] = {spec.key: spec for spec in plan.order}
        self._lazy = _lazy_keys(plan)
        # In load order: status() reads it as is (system:health asks on every call), and
        # keeps the tuple it made in _listed until a status changes (_set, _note_plan), the
        # watchdog counts another stall or a worker restarts or fails.
        self._listed: tuple[PluginStatus, ...] | None = None
        self._listed_stalls: dict[str, int] = {}
        self._listed_workers: tuple[tuple[int | None, int, Reason | None], ...] = ()
        self._status: dict[str, PluginStatus] = _waiting(plan.order, self._lazy)
        self._wanted_by: dict[str, tuple[str, ...]] = {}
        self._activations: dict[str, asyncio.Future[None]] = {}
        self._excluded: tuple[PluginStatus, ...] = ()
        self._declared: tuple[tuple[PluginStatus, PluginCapabilities], ...] = ()
        self._note_plan(plan)
        self._watchdog: Watchdog | None = None
        self._workers: dict[str, WorkerPlugin] = _workers_of(plan.order)
        self._phase = "new"

    async def start(self) -> None:
        """Register, give context to, and start every plugin of the plan, in load order."""
        if self._phase != "new":
            raise HostStateError(action="start", phase=self._phase)
        self._phase = "starting"
        self._tasks.install()
        if self.config.host.watchdog_threshold > 0:
            self._watchdog = Watchdog(self.config.host.watchdog_threshold, self.deadline_for)
            self._watchdog.start()
        await self._start_pending()
        self._phase = "running"
        for status in self.status():
            if status.status == "running":
                logger.info(
                    "running %s %s from %s",
                    status.name,
                    status.version,
                    status.origin,
                    extra={"plugin": status.name},
                )
            elif status.reason is not None:
                logger.warning(
                    "not running %s: %s",
                    status.name,
                    status.reason.message,
                    extra={"plugin": status.name},
                )

    async def _start_pending(self) -> None:
        """The three start passes (register, context, startup) over the pending plugins.

        Each pass goes over the plugins pending when the first began (not every lazy one
        again), and skips those an earlier pass or a failed dependency took out.
        """
        pending = [spec for spec in self.plan.order if self._is_pending(spec)]
        for spec in pending:
            if self._is_pending(spec):
                self._register(spec)
        await self._spawn_workers()
        for spec in pending:
            if self._is_pending(spec):
                await self._start_hook(spec, "ksi_plugin_context", "context-failed")
        for spec in pending:
            if self._is_pending(spec) and await self._start_hook(
                spec, "ksi_startup", "startup-failed"
            ):
                self._set(spec.key, "running")
        if self._marker is not None:
            self._marker.done()

    def _note_plan(self, plan: LoadPlan) -> None:
        """Keep what ``status()`` and unanswered events report about ``plan``'s exclusions."""
        self._listed = None
        self._excluded = tuple(
            PluginStatus(
                name=exclusion.name,
                key=exclusion.spec.key if exclusion.spec else exclusion.name,
                version=exclusion.spec.version if exclusion.spec else None,
                origin=exclusion.origin,
                status=exclusion_status(exclusion.reason),
                reason=exclusion.reason,
            )
            for exclusion in plan.excluded
        )
        excluded_specs = zip(self._excluded, plan.excluded, strict=True)
        self._declared = (
            *((self._status[spec.key], spec.capabilities) for spec in plan.order),
            *((status, e.spec.capabilities) for status, e in excluded_specs if e.spec),
        )

    async def reload(self) -> PlanChange:
        """Re-plan with the same config and paths and apply the difference (see ``_reload``)."""
        if self._planner is None:
            raise HostStateError(action="reload", phase="built without a planner")
        async with self._reloading:
            try:
                forgotten = forget_changed_modules(self.plan, self._stamps)
                plan = self._planner(tuple(self._extra_paths))
                self._stamps = forgotten.stamps_after(plan)
                return await self._apply(plan, forgotten.changed)
            finally:
                if self._marker is not None:
                    self._marker.done()  # the plan's imports are over, even if it failed

    async def load(self, path: str) -> tuple[PlanChange, tuple[PluginStatus, ...]]:
        """Add a plugin file or folder to the running host, as ``--plugin-path`` would at start.

        Returns the change and the status of each plugin ``path`` offered; a path none
        of whose plugins runs is dropped again, so a later reload does not retry it.
        """
        self._extra_paths.append(path)
        change = await self.reload()
        folder = f"{path.rstrip('/')}/"
        mine = tuple(
            status
            for status in self.status()
            if status.origin.kind == "path"
            and (status.origin.location == path or status.origin.location.startswith(folder))
        )
        if not any(status.status == "running" for status in mine):
            self._extra_paths.remove(path)
        return change, mine

    async def apply(self, plan: LoadPlan) -> PlanChange:
        """Adopt ``plan`` while running: stop, start and restart only what differs."""
        async with self._reloading:
            return await self._apply(plan)

    async def _apply(self, plan: LoadPlan, changed: Collection[str] = ()) -> PlanChange:
        if self._phase != "running":
            raise HostStateError(action="reload", phase=self._phase)
        active = {k for k, st in self._status.items() if st.status in ("running", "pending")}
        diff = diff_plans(self.plan, plan, active, changed)
        plan = keep_workers(self.plan, plan, diff.start)
        old = {spec.key: spec for spec in self.plan.order}
        names = {spec.key: spec.name for spec in (*self.plan.order, *plan.order)}
        for key in diff.stop:
            await self._stop_one(old[key])
        lazy = _lazy_keys(plan)
        self._listed = None
        fresh = [s for s in plan.order if s.key in diff.start or s.key not in self._status]
        waiting = _waiting(fresh, lazy)
        self._status = {
            spec.key: waiting[spec.key] if spec.key in waiting else self._status[spec.key]
            for spec in plan.order
        }
        self._specs = {
            spec.key: self._specs[spec.key]
            if spec.key in self._specs and spec.key not in diff.start
            else spec
            for spec in plan.order
        }
        self._lazy = lazy
        self._workers = _workers_of(self._specs.values())
        self._dispatcher.own_commands(plan.commands)
        self._wanted_by.clear()
        for key in diff.stop:
            self._activations.pop(key, None)
        self.plan = plan
        self._note_plan(plan)
        await self._start_pending()
        failed = {
            names[key]: reason.message
            for key in diff.start
            if (reason := self._status[key].reason) is not None
        }
        change = PlanChange.of(diff, names, failed)
        logger.info("reloaded: %s", change.summary())
        return change

    async def _stop_one(self, spec: PluginSpec) -> None:
        """Shut one plugin down (while the others run): its shutdown hook, then unregister it."""
        state = self._status[spec.key].status
        problem = None
        if state == "running":
            problem = await self._run_hook(
                spec, "ksi_shutdown", "shutdown-failed", self.config.host.shutdown_timeout
            )
        self._unregister(spec)
        self._contexts.pop(spec.name, None)
        self._settings.pop(spec.name, None)
        self._set(spec.key, "stopped", problem)
        if state == "running":
            logger.info("stopped %s", spec.name, extra={"plugin": spec.name})

    async def stop(self) -> None:
        """Shut every running plugin down in reverse load order; one failing stops no other.

        Tasks plugins started and did not finish or cancel in ``ksi_shutdown`` are
        cancelled last (see :mod:`ksi_host._tasks`).
        """
        if self._phase in ("stopping", "stopped"):
            return
        self._phase = "stopping"
        for spec in reversed(self.plan.order):
            if self._status[spec.key].status in ("running", "pending", "lazy"):
                await self._stop_one(spec)
        await self._tasks.close()
        if self._watchdog is not None:
            self._watchdog.stop()
        self._phase = "stopped"

    async def _emitted(
        self, event_name: str, data: dict[str, Any], context: Mapping[str, Any] | None = None
    ) -> Any:
        """The bus's route: dispatch, bounded in how deep emits nest."""
        if self._on_emit is not None:
            self._on_emit(event_name, data)
        unavailable = await self._activate_for(event_name) if self._lazy else None
        answer = await self._dispatcher.emit(event_name, data, context)
        return _unavailable_or(answer, unavailable)

    def dispatch(
        self,
        event_name: str,
        data: dict[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Route one event through filter, validate and handle; see :mod:`ksi_host._dispatch`.

        Without lazy plugins this is the dispatcher's own coroutine: a request that
        reaches no lazy plugin pays for no extra frame.
        """
        if self._lazy:
            return self._dispatch_lazy(event_name, data, context)
        return self._dispatcher.dispatch(event_name, data, context)

    async def _dispatch_lazy(
        self, event_name: str, data: dict[str, Any] | None, context: Mapping[str, Any] | None
    ) -> Any:
        unavailable = await self._activate_for(event_name)
        answer = await self._dispatcher.dispatch(event_name, data, context)
        return _unavailable_or(answer, unavailable)

    async def _activate_for(self, event_name: str) -> dict[str, Any] | None:
        """Activate the lazy plugins that want this event; the error reply of one that failed."""
        keys = self._wanted_by.get(event_name)
        if keys is None:
            keys = self._wanted(event_name)
        unavailable = None
        for key in keys:
            state = self._status[key].status
            if state == "lazy" and self._phase == "running":
                await self._activate(key, event_name)
                state = self._status[key].status
            if state == "failed" and unavailable is None:
                status = self._status[key]
                why = status.reason.message if status.reason else "it failed"
                unavailable = error_reply(
                    ErrorCode.UNAVAILABLE,
                    f"plugin {status.name!r} declares {event_name!r} but could not be "
                    f"activated: {why} (see plugin:list or ksi-host doctor)",
                    plugin=status.name,
                )
        return unavailable

    def _wanted(self, event_name: str) -> tuple[str, ...]:
        """The lazy plugins (activated or not) that declare ``event_name``, in load order."""
        namespace = event_name.partition(":")[0]
        keys = tuple(
            key
            for key in self._lazy
            if event_name in self._specs[key].capabilities.commands
            or namespace in self._specs[key].capabilities.event_namespaces
        )
        if len(self._wanted_by) < _MAX_WANTED:
            self._wanted_by[event_name] = keys
        return keys

    async def _activate(self, key: str, event_name: str) -> None:
        """Start one lazy plugin (its lazy dependencies first), once however many events wait."""
        activation = self._activations.get(key)
        if activation is None:
            activation = asyncio.ensure_future(self._start_lazy(key, event_name))
            self._activations[key] = activation
        await asyncio.shield(activation)

    async def _start_lazy(self, key: str, event_name: str) -> None:
        for dependency in self.plan.requires.get(key, ()):
            if self._status[dependency].status == "lazy":
                await self._activate(dependency, event_name)
        if self._status[key].status != "lazy":
            return  # a dependency failed, and failed this plugin with it
        spec = self._specs[key]
        logger.info("activating lazy plugin %s for %s", spec.name, event_name)
        self._set(key, "pending")
        try:
            await self._start_activated(spec, event_name)
        finally:
            if self._marker is not None:
                self._marker.done()

    async def _start_activated(self, spec: PluginSpec, event_name: str) -> None:
        """A lazy plugin's import and start hooks, each under the crash-safe start's marker."""
        if self._marker is not None and not spec.imported:
            self._marker.starting(spec, "import", event_name)
            self._register(spec)
            self._marker.finished(spec)
        else:
            self._register(spec)
        stamp = code_stamp(spec)
        if stamp is not None:
            self._stamps.setdefault(spec.key, stamp)
        passes: tuple[tuple[str, ReasonCode], ...] = (
            ("ksi_plugin_context", "context-failed"),
            ("ksi_startup", "startup-failed"),
        )
        for hook, code in passes:
            if self._is_pending(spec) and not await self._start_hook(spec, hook, code, event_name):
                return
        if self._is_pending(spec):
            self._set(spec.key, "running")

    def fall_back(
        self, plugin_name: str, namespaces: Collection[str], fallback: Fallback | None
    ) -> None:
        """Send the events of ``namespaces`` no handler answers to a plugin's ``fallback``.

        The NATS bridge forwards them to other hosts this way; the claim ends when the
        plugin stops or fails. See :meth:`ksi_host._dispatch.Dispatcher.fall_back`.
        """
        self._dispatcher.fall_back(plugin_name, namespaces, fallback)

    def context_for(self, plugin_name: str) -> PluginContext:
        """The context plugin ``plugin_name`` gets (see :class:`ksi_host.PluginContext`)."""
        context = self._contexts.get(plugin_name)
        if context is None:
            settings = self._settings.get(plugin_name)
            context = self._contexts[plugin_name] = self._new_context(plugin_name, settings)
        return context

    def _new_context(self, plugin_name: str, settings: Any) -> PluginContext:
        return PluginContext(
            plugin=plugin_name,
            config=self._config_dict,
            settings=settings,
            event_bus=self.bus,
            host=self._view,
        )

    def deadline_for(self, plugin: str, hook: str) -> float:
        """How long one call of ``hook`` into ``plugin`` may take (:mod:`ksi_host._deadline`)."""
        if hook in ("ksi_plugin_context", "ksi_startup"):
            return self.config.host.startup_timeout
        if hook == "ksi_shutdown":
            return self.config.host.shutdown_timeout
        return self.config.host.call_timeout_for(plugin)

    def _why_unhandled(self, event_name: str, namespace: str) -> str | None:
        """Name the plugin that declares an unanswered event but is not running."""
        for declared, capabilities in self._declared:
            status = self._status.get(declared.key, declared)
            wants = (
                event_name in capabilities.commands or namespace in capabilities.event_namespaces
            )
            if wants and status.status != "running":
                why = f": {status.reason.message}" if status.reason else ""
                return (
                    f"plugin {status.name!r} declares it but is {status.status}{why} "
                    "(see plugin:list or ksi-host doctor)"
                )
        new = self._installed_since.names(self.plan) if self._installed_since else ()
        if new:
            return (
                f"installed since the daemon started, not running yet: {', '.join(new)}; "
                "run `ksi-host reload` to start them"
            )
        return None

    def status(self) -> tuple[PluginStatus, ...]:
        """Every plugin of the plan in load order, then the ones the plan excluded.

        The same tuple until a status changes, the watchdog counts a stall or an isolated
        plugin's worker restarts or fails, since ``system:health`` asks on every call.
        """
        stalls = self._watchdog.stalls if self._watchdog is not None else {}
        workers = (
            tuple((w.pid, w.restarts, w.failure) for w in self._workers.values())
            if self._workers
            else ()
        )
        if (
            self._listed is None
            or workers != self._listed_workers
            or dict.__ne__(stalls, self._listed_stalls)  # dict's own: a Counter's is Python
        ):
            self._listed_stalls = dict(stalls)  # first: a stall counted meanwhile is seen next
            self._listed_workers = workers
            self._listed = (*map(self._current, self._status.values()), *self._excluded)
        return self._listed

    def _current(self, status: PluginStatus) -> PluginStatus:
        """A plugin's status with its stalls and, if isolated, its worker's state."""
        stalls = self._watchdog.stalls if self._watchdog is not None else None
        if stalls and status.name in stalls:
            status = replace(status, stalls=stalls[status.name])
        proxy = self._workers.get(status.key)
        if proxy is None:
            return status
        status = replace(status, worker={"pid": proxy.pid, "restarts": proxy.restarts})
        if status.status == "running" and proxy.failure is not None:
            status = replace(status, status="failed", reason=proxy.failure)
        return status

    def entries(self) -> list[PluginEntry]:
        """Every plugin's verdict in the shape all views share (``plugin:list``)."""
        from ksi_host._schema import plugin_entries  # the report models: not needed to start

        live = {
            key: (current.status, current.reason)
            for key, current in ((key, self._current(s)) for key, s in self._status.items())
        }
        return plugin_entries(self.plan, live)

    def failed(self) -> tuple[str, ...]:
        """Names of the plugins the plan would run that are not running: failed ones."""
        return tuple(status.name for status in self._status.values() if status.status == "failed")

    def plugin_list(self) -> dict[str, Any]:
        """``plugin:list``'s answer: every plugin's live verdict and the plan's warnings.

        A plugin that blocked the event loop also has ``stalls``, an isolated one its
        ``worker`` (``pid``, ``restarts``); a crashed worker's plugin is ``failed``.
        """
        from ksi_host._schema import SCHEMA_VERSION, warning_reports

        extra = {
            status.name: {
                **({"stalls": status.stalls} if status.stalls else {}),
                **({"worker": status.worker} if status.worker is not None else {}),
            }
            for status in map(self._current, self._status.values())
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "command": "plugin:list",
            "plugins": [
                {**entry.model_dump(mode="json"), **extra.get(entry.name, {})}
                for entry in self.entries()
            ],
            "warnings": [w.model_dump(mode="json") for w in warning_reports(self.plan.warnings)],
        }

    async def metrics(self) -> dict[str, Any]:
        """Every plugin's ``ksi_metrics_collected`` plus the host's own under ``"ksi_host"``."""
        metrics: dict[str, Any] = {}
        failed = []
        for impl in reversed(self.manager.pm.hook.ksi_metrics_collected.get_hookimpls()):
            deadline = self.config.host.call_timeout_for(impl.plugin_name)
            try:
                result = await within(
                    self.tracer.call_hook(impl, "ksi_metrics_collected", metrics=metrics), deadline
                )
            except (Exception, PluginStalled):
                logger.exception("plugin %r failed in ksi_metrics_collected", impl.plugin_name)
                failed.append(impl.plugin_name)
                continue
            if isinstance(result, dict) and result is not metrics:
                metrics.update(result)
        metrics["ksi_host"] = {
            **self._dispatcher.stats(),
            "plugins": dict(Counter(status.status for status in self.status())),
            "metrics_failed": failed,
            "stalls": dict(self._watchdog.stalls) if self._watchdog is not None else {},
        }
        return metrics

    async def _spawn_workers(self) -> None:
        """Start every isolated plugin's worker process, all at once."""
        if not self._workers:
            return
        specs = [s for s in self.plan.order if s.key in self._workers and self._is_pending(s)]
        results = await asyncio.gather(
            *(
                self._workers[s.key].spawn(self.context_for(s.name), self._sections.get(s.key))
                for s in specs
            ),
            return_exceptions=True,
        )
        for spec, result in zip(specs, results, strict=True):
            if isinstance(result, PluginConfigInvalid):
                self._fail(spec, config_reason(result))
            elif isinstance(result, KsiError):
                self._fail(spec, Reason("startup-failed", result.what, result.hint or ""))
            elif isinstance(result, BaseException):
                raise result

    def _is_pending(self, spec: PluginSpec) -> bool:
        return self._status[spec.key].status == "pending"

    def _set(self, key: str, state: Status, reason: Reason | None = None) -> None:
        self._status[key] = replace(self._status[key], status=state, reason=reason)
        self._listed = None

    def _register(self, spec: PluginSpec) -> None:
        """Register a plugin the plan vetted (see :mod:`ksi_host._vet`), with its settings.

        A plugin the plan knew from its manifest is imported now, and held to the
        same checks the plan holds an imported plugin to. The plan checked the config
        section; the host validates it again only to hand the plugin the model instance
        (``context.settings``), so a plan made for another config still cannot start a
        plugin with a section its model refuses.
        """
        if not spec.imported:
            imported = import_described(spec)
            if isinstance(imported, Reason):
                self._fail(spec, imported)
                return
            spec = self._specs[spec.key] = imported
            problem = vet_one(spec, self._sections.get(spec.key), KsiPluggyManager())
            if problem is not None:
                self._fail(spec, problem)
                return
        try:
            settings = plugin_settings(spec.name, spec.plugin, self._sections.get(spec.key))
        except PluginConfigInvalid as exc:  # the plan vetted it; a config given to Host may differ
            self._fail(spec, config_reason(exc))
            return
        self._settings[spec.name] = settings
        self._contexts.pop(spec.name, None)
        try:
            self.manager.pm.register(spec.plugin, name=spec.name)
        except PluginRegistrationError as exc:
            code: ReasonCode = "hook-mismatch" if exc.hook else "not-a-plugin"
            self._fail(spec, Reason(code, exc.what, exc.hint or "", hook=exc.hook))
            return
        self._dispatcher.declare(spec.name, spec.capabilities)
        if isinstance(spec.plugin, TransportPlugin):
            spec.plugin.attach(self.dispatch)

    def _impls(self, spec: PluginSpec, hook: str) -> list[pluggy.HookImpl]:
        return self.manager.pm.hookimpls_of(self._specs[spec.key].plugin, hook)

    async def _start_hook(
        self, spec: PluginSpec, hook: str, code: ReasonCode, event: str | None = None
    ) -> bool:
        """Run a start pass hook; on failure, fail the plugin and its dependents.

        ``event`` is the event that activated a lazy plugin, for the crash-safe marker,
        which names only a plugin whose code runs next: one without ``hook`` passes.
        """
        impls = self._impls(spec, hook)
        if not impls:
            return True
        if self._marker is not None:
            self._marker.starting(spec, hook, event)
        problem = await self._run_hook(
            spec, hook, code, self.config.host.startup_timeout, impls=impls
        )
        if self._marker is not None:
            self._marker.finished(spec)
        if problem is not None:
            self._fail(spec, problem)
        return problem is None

    async def _run_hook(
        self,
        spec: PluginSpec,
        hook: str,
        code: ReasonCode,
        timeout: float,
        *,
        impls: Sequence[pluggy.HookImpl] | None = None,
    ) -> Reason | None:
        """Call one plugin's lifecycle ``hook`` within ``timeout``; say what went wrong, if so.

        ``impls``: the plugin's implementations of ``hook``, when the caller has them.
        """
        kwargs = {"context": self.context_for(spec.name)} if hook == "ksi_plugin_context" else {}
        for impl in self._impls(spec, hook) if impls is None else impls:
            task = asyncio.ensure_future(self.tracer.call_hook(impl, hook, **kwargs))
            try:
                await asyncio.wait((task,), timeout=timeout)
            except asyncio.CancelledError:
                task.cancel()  # the host itself is being cancelled: so is the hook
                raise
            if not task.done():
                stack = _suspended_at(task.get_coro())
                task.cancel()
                task.add_done_callback(_log_late_failure)
                logger.error("plugin %r did not finish %s within %g s", spec.name, hook, timeout)
                return Reason(
                    code,
                    f"plugin {spec.name!r} did not finish {hook} within {timeout:g} s",
                    f"make {hook} return sooner (start long work as a task), raise "
                    f"[host] {'shutdown' if hook == 'ksi_shutdown' else 'startup'}_timeout, "
                    "or disable the plugin in [host] disabled",
                    traceback=stack,
                )
            exc = asyncio.CancelledError() if task.cancelled() else task.exception()
            if isinstance(exc, PluginStalled):
                return Reason(
                    code,
                    str(exc),
                    f"never block the event loop in {hook}: await, or run blocking work with "
                    "asyncio.to_thread; or disable the plugin in [host] disabled",
                    traceback="".join(
                        traceback.format_exception(type(exc), exc, exc.__traceback__)
                    ),
                )
            if exc is not None:
                logger.error("plugin %r failed in %s", spec.name, hook, exc_info=exc)
                return Reason(
                    code,
                    f"plugin {spec.name!r} raised {type(exc).__name__} in {hook}: "
                    + (_what_and_where(exc) if isinstance(exc, KsiError) else str(exc)),
                    exc.hint
                    if isinstance(exc, KsiError) and exc.hint
                    else f"fix the plugin's {hook}, or disable it in [host] disabled",
                    traceback="".join(
                        traceback.format_exception(type(exc), exc, exc.__traceback__)
                    ),
                )
        return None

    def _fail(self, spec: PluginSpec, reason: Reason) -> None:
        """Fail ``spec`` and every plugin that needs it (not one that only starts after it)."""
        self._unregister(spec)
        self._set(spec.key, "failed", reason)
        names = {s.key: s for s in self.plan.order}
        for key in self.plan.dependents(spec.key):
            if self._status[key].status == "failed":
                continue
            dependent = names[key]
            need = next(
                dep for dep in self.plan.hard_needs(key) if self._status[dep].status == "failed"
            )
            cause = self._status[need].reason
            assert cause is not None
            self._unregister(dependent)
            self._set(
                key,
                "failed",
                Reason(
                    "dependency-failed",
                    f"plugin {dependent.name!r} needs {_chain(names[need].name, cause)}",
                    f"fix {reason.code} of {spec.name!r} first (see its reason)",
                    cause=cause,
                    requirement=names[need].name,
                ),
            )

    def _unregister(self, spec: PluginSpec) -> None:
        if is_worker(spec.plugin) and self._phase == "starting":
            spec.plugin.discard()
        pm = self.manager.pm
        spec = self._specs[spec.key]
        if spec.imported and pm.is_registered(spec.plugin):
            pm.unregister(spec.plugin)
            self._dispatcher.declare(spec.name, None)
        if isinstance(spec.plugin, TransportPlugin):
            spec.plugin.attach(None)


def _chain(name: str, cause: Reason) -> str:
    """``'b', which needs 'a', which failed (startup-failed)``: the real chain, not a flat one."""
    parts = [repr(name)]
    while cause.code == "dependency-failed" and cause.cause is not None and cause.requirement:
        parts.append(repr(cause.requirement))
        cause = cause.cause
    return ", which needs ".join(parts) + f", which failed ({cause.code})"


def _workers_of(specs: Iterable[PluginSpec]) -> dict[str, WorkerPlugin]:
    """The plugins that run in a worker process of their own."""
    return {spec.key: spec.plugin for spec in specs if is_worker(spec.plugin)}


def _what_and_where(exc: KsiError) -> str:
    return f"{exc.what} ({exc.where})" if exc.where else exc.what


_MAX_WANTED: Final = 4096
"""Event names whose lazy plugins are remembered (as the dispatcher's routes are)."""


def _waiting(specs: Iterable[PluginSpec], lazy: Iterable[str]) -> dict[str, PluginStatus]:
    """Each spec's status before it starts: ``lazy`` until its first event, else pending."""
    lazy_keys = frozenset(lazy)  # the lazy keys are a tuple in load order: searched per spec
    return {
        spec.key: PluginStatus(
            spec.name,
            spec.key,
            spec.version,
            spec.origin,
            "lazy" if spec.key in lazy_keys else "pending",
        )
        for spec in specs
    }


def _lazy_keys(plan: LoadPlan) -> tuple[str, ...]:
    """Plugins to start on their first event: lazy, and needed by none started at start-up."""
    eager = {spec.key for spec in plan.order if not spec.lazy}
    for spec in reversed(plan.order):
        if spec.key in eager:
            eager.update(plan.requires.get(spec.key, ()))
    return tuple(spec.key for spec in plan.order if spec.key not in eager)


def _unavailable_or(answer: Any, unavailable: dict[str, Any] | None) -> Any:
    """The dispatcher's answer, unless nobody answered because a lazy plugin failed to start."""
    if unavailable is None or not isinstance(answer, dict):
        return answer
    error = answer.get("error")
    unanswered = isinstance(error, dict) and error.get("code") == ErrorCode.NO_HANDLER.value
    return unavailable if answer.get("status") == "error" and unanswered else answer


def _log_late_failure(task: asyncio.Future[Any]) -> None:
    """A timed-out hook that raised something other than the cancellation: log, not warn."""
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "a timed-out plugin hook failed after it was cancelled", exc_info=task.exception()
        )


def _suspended_at(coro: object) -> str:
    """Where a stuck coroutine waits, through every coroutine it awaits (a traceback's shape)."""
    frames: list[tuple[FrameType, int]] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    lines = traceback.StackSummary.extract(frames).format()
    return "Stuck here (most recent call last):\n" + "".join(lines)
