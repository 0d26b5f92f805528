"""Route a ``namespace:action`` event through filter -> validate -> handle, calling only who asked.

pluggy calls every implementation of a hook for every event. The dispatcher
instead keeps, per event name, the implementations that want it: a plugin that
declares ``event_namespaces``/``commands`` is called only for those, one that
declares nothing sees every event. Within a stage, implementations run in pluggy's
order (``tryfirst`` first, later registrations first, ``trylast`` last), and
coroutines are awaited.

What :meth:`Dispatcher.dispatch` returns:

- exactly one handler answered (returned non-``None`` or raised): that answer, as is, so
  a socket client gets the plugin's own dict, e.g. ``{"status": "healthy"}``;
- several answered: ``{"status": "multiple", "results": [{"plugin": name, "result": answer},
  ...]}`` in call order, a raising handler's entry being ``{"plugin": name, "error": {...}}``;
- otherwise an error ``{"status": "error", "error": {"code": ..., "message": ...,
  "plugin": ...}}`` (``plugin`` when one is to blame) with one of the stable codes
  ``INVALID_EVENT_NAME``, ``INVALID_INPUT`` (data is not an object, or a validator
  raised: its message), ``BLOCKED`` (a filter returned ``None``), ``NO_HANDLER``,
  ``INTERNAL_ERROR`` (a filter or the only handler raised; logged with its traceback,
  the reply names the plugin but not the exception), ``EMIT_TOO_DEEP`` (an event
  emitted from inside handling another, nested deeper than ``max_emit_depth``: plugins
  that emit to each other in a loop get this answer instead of recursing forever),
  ``TIMEOUT`` (a filter, validator or handler did not finish within its deadline,
  ``[host] call_timeout`` or the plugin's ``[host.call_timeouts]`` entry: the reply
  names the plugin; see :mod:`ksi_host._deadline`).

A plugin may take the fallback role for whole namespaces (:meth:`Dispatcher.fall_back`):
an event of such a namespace that no handler answered goes to that plugin's fallback
instead of getting ``NO_HANDLER`` (the NATS bridge forwards it to another host). Only
the no-answer path looks the fallback up, so events that a handler answers cost the same.
The chain of emitted events (see ``EMIT_TOO_DEEP``) can be read with :func:`emit_chain` and
carried on with :func:`continued_chain`, so it bounds emits that cross hosts too.

Each plugin's handler gets its own :class:`~ksi_host.PluginContext` (see :class:`Dispatcher`).
Likewise each validator and each handler gets its own copy of the data
(:func:`~ksi_host._snapshot.snapshot`): what one changes, no other plugin and no history
entry sees. A filter's change is explicit: the dict it returns is what goes on.

The host's own diagnostic events (``DIAGNOSTIC_EVENTS``: ``system:health``,
``system:metrics``, ``plugin:list``) skip every plugin's filters and validators, so a
catch-all filter that fails cannot keep the operator from asking what is wrong.

Filters fail closed: a filter that raises or returns something other than a dict
stops the event, since it may be the one that guards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import CoroutineType, FrameType
from typing import Any, Final, Protocol

import pluggy

from ksi_host._crash_record import RECORD, line
from ksi_host._deadline import attributed, within
from ksi_host._snapshot import snapshot
from ksi_host._suggest import close_matches, did_you_mean
from ksi_host._watchdog import call_site
from ksi_host.context import PluginContext
from ksi_host.errors import DeadlineExceeded, InvalidEventName, PluginStalled
from ksi_host.events import split_event_name
from ksi_host.plugin_types import PluginCapabilities
from ksi_host.replies import ErrorCode, error_reply

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DIAGNOSTIC_EVENTS",
    "CallWrapper",
    "Dispatcher",
    "EventObserver",
    "Fallback",
    "call_hookimpl",
    "continued_chain",
    "emit_chain",
    "hook_name",
]

logger: Final = logging.getLogger("ksi_host.dispatch")

DEFAULT_CALL_TIMEOUT: Final = 30.0

DIAGNOSTIC_EVENTS: Final = frozenset({"system:health", "system:metrics", "plugin:list"})
"""The operator's own questions: no plugin's filter or validator stands in their way."""

_FILTER_ARGS: Final = ("event_name", "data")
_HANDLE_ARGS: Final = ("event_name", "data", "context")
_MAX_ROUTES: Final = 4096
_SHOWN_CHAIN: Final = 6

_EMIT_CHAIN: Final[ContextVar[tuple[str, ...]]] = ContextVar("ksi_emit_chain", default=())
"""The events being emitted around the running code, outermost first; tasks inherit it."""


Fallback = Callable[[str, dict[str, Any], Mapping[str, Any] | None], Awaitable[Any]]
"""``await fallback(event_name, data, context)``: the answer to an event no handler answered."""


def emit_chain() -> tuple[str, ...]:
    """The events being emitted around the running code, outermost first."""
    return _EMIT_CHAIN.get()


@contextlib.contextmanager
def continued_chain(chain: tuple[str, ...]) -> Iterator[None]:
    """Run the body as if inside ``chain``'s emits (an event that came from another host)."""
    token = _EMIT_CHAIN.set(chain)
    try:
        yield
    finally:
        _EMIT_CHAIN.reset(token)


async def call_hookimpl(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one plugin's implementation with the arguments it takes; await a coroutine.

    The call is written to the crash record (:mod:`ksi_host._crash_record`) first.
    """
    if RECORD.ids is not None:
        RECORD.write(line(impl.plugin_name, hook_name(impl), None))
    result = impl.function(*(kwargs[name] for name in impl.argnames))
    if inspect.isawaitable(result):
        result = await result
    return result


def hook_name(impl: pluggy.HookImpl) -> str:
    """The hook ``impl`` implements (its ``specname``, else its function's name)."""
    return str(impl.opts.get("specname") or impl.function.__name__)


class EventObserver(Protocol):
    """Who sees accepted events besides the handlers: the event bus."""

    def record(self, event_name: str, namespace: str, data: dict[str, Any]) -> bool:
        """Note an accepted event; return True to have :meth:`notify` called."""

    async def notify(self, event_name: str, data: dict[str, Any]) -> None:
        """Deliver an accepted event to listeners."""


CallWrapper = Callable[[Callable[..., Any], str], Callable[..., Any]]
"""Wraps one plugin's call (given the call and the plugin name), e.g. to trace it."""


class _Impl:
    """One plugin's implementation of an event hook for one event, ready to call positionally.

    ``slot`` is its line in the crash record (:mod:`ksi_host._crash_record`), held while
    it lives.
    """

    __slots__ = ("call", "context", "hook", "is_async", "plugin", "slot", "stats", "timeout")

    def __init__(
        self,
        impl: pluggy.HookImpl,
        event_name: str,
        full: tuple[str, ...],
        context: PluginContext,
        timeout: float,
        stats: list[int] | None = None,
        wrap: CallWrapper | None = None,
    ) -> None:
        self.plugin: Final = impl.plugin_name
        self.hook: Final = hook_name(impl)
        self.slot: Final = RECORD.claim(self.plugin, self.hook, event_name)
        self.timeout: Final = timeout
        call = _adapt(impl.function, tuple(impl.argnames), full)
        self.call: Final = call if wrap is None else wrap(call, impl.plugin_name)
        self.is_async: Final = inspect.iscoroutinefunction(impl.function)
        self.stats: Final = stats if stats is not None else [0, 0, 0]
        self.context: Final = context

    def __del__(self, release: Callable[[int], None] = RECORD.release) -> None:
        release(self.slot)  # bound at definition: still there while the interpreter exits


def _adapt(function: Callable[..., Any], argnames: tuple[str, ...], full: tuple[str, ...]) -> Any:
    """Call ``function`` with the subset of ``full`` it names (a hook may take fewer args)."""
    if argnames == full:
        return function
    positions = tuple(full.index(name) for name in argnames)

    def call(*args: Any) -> Any:
        return function(*(args[i] for i in positions))

    return call


def _with_caller(own: PluginContext, extra: Mapping[str, Any]) -> PluginContext:
    """A plugin's own context plus the caller's entries (e.g. the connection)."""
    return extra if isinstance(extra, PluginContext) else own.extend(extra)


@dataclass(frozen=True)
class _Route:
    namespace: str
    count: list[int]
    filters: tuple[_Impl, ...]
    validators: tuple[_Impl, ...]
    handlers: tuple[_Impl, ...]


class Dispatcher:
    """The event pipeline over one pluggy manager, with a routing index per event name.

    ``context_for(plugin_name)`` gives the context a plugin's handler receives.
    ``routing=False`` calls every implementation as pluggy would; the routing property
    test compares both, and it helps find a plugin that handles events it never declared.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        context_for: Callable[[str], PluginContext],
        observer: EventObserver,
        *,
        routing: bool = True,
        max_emit_depth: int = 32,
        explain_unhandled: Callable[[str, str], str | None] | None = None,
        command_owners: Mapping[str, str] | None = None,
        call_timeout: Callable[[str], float] = lambda plugin: DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self._pm = pm
        self._owners: Final = dict(command_owners or {})
        self._call_timeout = call_timeout
        self._explain_unhandled = explain_unhandled
        self._context_for = context_for
        self._observer = observer
        self._routing = routing
        self._max_emit_depth = max_emit_depth
        self._capabilities: dict[str, PluginCapabilities] = {}
        self._routes: dict[str, _Route] = {}
        self._events: dict[str, list[int]] = {}
        self._errors: dict[str, int] = {}
        self._handler_stats: dict[str, list[int]] = {}
        self._fallbacks: dict[str, tuple[str, Fallback]] = {}

    def declare(self, plugin_name: str, capabilities: PluginCapabilities | None) -> None:
        """Record (or, with ``None``, forget) which events a plugin wants; re-route everything."""
        if capabilities is None:
            self._capabilities.pop(plugin_name, None)
            self.fall_back(plugin_name, (), None)
        else:
            self._capabilities[plugin_name] = capabilities
        self.invalidate()

    def fall_back(
        self, plugin_name: str, namespaces: Collection[str], fallback: Fallback | None
    ) -> None:
        """Give ``plugin_name`` the events of ``namespaces`` that no handler answers.

        Replaces what the plugin had (``None`` or no namespaces: nothing). A namespace
        has one fallback: claiming one another plugin holds raises ``ValueError``.
        """
        taken = {
            ns: owner
            for ns in namespaces
            if (owner := self._fallbacks.get(ns, (plugin_name,))[0]) != plugin_name
        }
        if taken:
            raise ValueError(
                "the unanswered events of "
                + ", ".join(
                    f"namespace {ns!r} already go to plugin {o!r}" for ns, o in taken.items()
                )
            )
        for ns in [ns for ns, (owner, _) in self._fallbacks.items() if owner == plugin_name]:
            del self._fallbacks[ns]
        if fallback is not None:
            self._fallbacks.update(dict.fromkeys(namespaces, (plugin_name, fallback)))

    def invalidate(self) -> None:
        """Forget cached routes; call after registering or unregistering plugins."""
        self._routes.clear()

    def own_commands(self, command_owners: Mapping[str, str]) -> None:
        """Answer each command only by its chosen plugin from now on (a reloaded plan's)."""
        self._owners.clear()
        self._owners.update(command_owners)
        self._routes.clear()

    async def emit(
        self,
        event_name: str,
        data: dict[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Dispatch an event a plugin sent, unless it is nested too deep in other emits."""
        chain = _EMIT_CHAIN.get()
        if len(chain) >= self._max_emit_depth:
            return self._too_deep(event_name, chain)
        _EMIT_CHAIN.set((*chain, str(event_name)))
        try:
            # A handler that emits in a loop yields here: other clients are served, and
            # its deadline's cancellation gets in.
            await asyncio.sleep(0)
            return await self.dispatch(event_name, data, context)
        finally:
            # Not reset(token): a call into a plugin that waits goes on in a task of its
            # own (see _deadline.within), whose context is a copy of the one the token
            # was made in.
            _EMIT_CHAIN.set(chain)

    def _too_deep(self, event_name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        """The answer to an emit nested ``max_emit_depth`` deep, and its log line."""
        shown = " -> ".join(chain[-_SHOWN_CHAIN:])
        logger.info(
            "cut off %r: emitted inside %d nested emitted events (max_emit_depth; latest: %s)",
            event_name,
            len(chain),
            shown,
            extra={"event": event_name},
        )
        return self._error(
            ErrorCode.EMIT_TOO_DEEP,
            f"event {event_name!r} was emitted inside {len(chain)} nested emitted events, "
            f"the limit (latest: {shown}); plugins that emit to each other in a loop never "
            "end: break the loop, or raise [host] max_emit_depth if the nesting is meant",
        )

    async def dispatch(
        self,
        event_name: str,
        data: dict[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run the pipeline for one event and return the answer (see the module docstring)."""
        route = self._routes.get(event_name)
        if route is None:
            try:
                route = self._build_route(event_name)
            except InvalidEventName as exc:
                return self._error(ErrorCode.INVALID_EVENT_NAME, f"{exc.what}; {exc.hint}")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            return self._error(
                ErrorCode.INVALID_INPUT, f"event data must be an object, not {type(data).__name__}"
            )
        route.count[0] += 1
        ids = RECORD.ids
        for impl in route.filters:
            if ids is not None:
                ids[0] = impl.slot
            try:
                result = impl.call(event_name, data)
                if impl.is_async or type(result) is CoroutineType:
                    result = await within(
                        result, impl.timeout, (impl.plugin, impl.hook, event_name)
                    )
            except (DeadlineExceeded, PluginStalled) as exc:
                return self._timed_out(impl, event_name, exc)
            except Exception:
                logger.exception("filter of plugin %r failed on %r", impl.plugin, event_name)
                return self._error(
                    ErrorCode.INTERNAL_ERROR,
                    f"the event filter of plugin {impl.plugin!r} failed on {event_name!r}",
                    impl.plugin,
                )
            if result is None:
                return self._error(
                    ErrorCode.BLOCKED,
                    f"event {event_name!r} was blocked by plugin {impl.plugin!r}",
                    impl.plugin,
                )
            if not isinstance(result, dict):
                logger.error("filter of plugin %r returned %r", impl.plugin, type(result))
                return self._error(
                    ErrorCode.INTERNAL_ERROR,
                    f"the event filter of plugin {impl.plugin!r} returned "
                    f"{type(result).__name__}, not the event data (a dict) or None",
                    impl.plugin,
                )
            data = result
        for impl in route.validators:
            if ids is not None:
                ids[0] = impl.slot
            try:
                result = impl.call(event_name, snapshot(data) if data else {})
                if impl.is_async or type(result) is CoroutineType:
                    await within(result, impl.timeout, (impl.plugin, impl.hook, event_name))
            except (DeadlineExceeded, PluginStalled) as exc:
                return self._timed_out(impl, event_name, exc)
            except Exception as exc:
                return self._error(
                    ErrorCode.INVALID_INPUT, str(exc) or type(exc).__name__, impl.plugin
                )
        if self._observer.record(event_name, route.namespace, data):
            await self._observer.notify(event_name, data)
        answers: list[tuple[str, Any, dict[str, Any] | None]] = []
        for impl in route.handlers:
            stats = impl.stats  # [calls, errors, nanoseconds], shared per plugin
            start = time.perf_counter_ns()
            if ids is not None:
                ids[0] = impl.slot
            try:
                result = impl.call(
                    event_name,
                    snapshot(data) if data else {},
                    impl.context if context is None else _with_caller(impl.context, context),
                )
                if impl.is_async or type(result) is CoroutineType:
                    result = await within(
                        result, impl.timeout, (impl.plugin, impl.hook, event_name)
                    )
            except (DeadlineExceeded, PluginStalled) as exc:
                stats[1] += 1
                answers.append((impl.plugin, None, self._timed_out(impl, event_name, exc)))
            except Exception:
                stats[1] += 1
                logger.exception("handler of plugin %r failed on %r", impl.plugin, event_name)
                answers.append((impl.plugin, None, self._handler_failed(impl.plugin, event_name)))
            else:
                if result is not None:
                    answers.append((impl.plugin, result, None))
            stats[0] += 1
            stats[2] += time.perf_counter_ns() - start
        if len(answers) == 1:
            _, result, error = answers[0]
            return result if error is None else error
        if not answers:
            if route.namespace in self._fallbacks:
                return await self._fall_back(event_name, route.namespace, data, context)
            return self._error(ErrorCode.NO_HANDLER, self._unhandled(event_name, route.namespace))
        return {
            "status": "multiple",
            "results": [
                {"plugin": plugin, "result": result}
                if error is None
                else {"plugin": plugin, "error": error["error"]}
                for plugin, result, error in answers
            ],
        }

    def stats(self) -> dict[str, Any]:
        """The host's own metrics: events per namespace, errors per code, time per handler."""
        return {
            "events": {namespace: count[0] for namespace, count in self._events.items()},
            "errors": dict(self._errors),
            "handlers": {
                plugin: {"calls": calls, "errors": errors, "time_ms": elapsed / 1e6}
                for plugin, (calls, errors, elapsed) in self._handler_stats.items()
            },
        }

    def _error(self, code: ErrorCode, message: str, plugin: str | None = None) -> dict[str, Any]:
        self._errors[code.value] = self._errors.get(code.value, 0) + 1
        return error_reply(code, message, plugin=plugin)

    async def _fall_back(
        self,
        event_name: str,
        namespace: str,
        data: dict[str, Any],
        context: Mapping[str, Any] | None,
    ) -> Any:
        plugin, fallback = self._fallbacks[namespace]
        try:
            return await fallback(event_name, data, context)
        except Exception:
            logger.exception("fallback of plugin %r failed on %r", plugin, event_name)
            return self._handler_failed(plugin, event_name)

    def _unhandled(self, event_name: str, namespace: str) -> str:
        why = self._explain_unhandled(event_name, namespace) if self._explain_unhandled else None
        if why is None:
            why = self._suggest(event_name)
        return f"no plugin handles {event_name!r}" + (f"; {why}" if why else "")

    def _timed_out(
        self, impl: _Impl, event_name: str, exc: DeadlineExceeded | PluginStalled
    ) -> dict[str, Any]:
        if isinstance(exc, PluginStalled):
            what = f"blocked the event loop for {exc.seconds:.1f} s on {event_name!r}, stopped"
        else:
            what = f"did not answer {event_name!r}"
        logger.error("plugin %r %s (%s, deadline %g s)", impl.plugin, what, impl.hook, impl.timeout)
        return self._error(
            ErrorCode.TIMEOUT,
            f"plugin {impl.plugin!r} {what} within its {impl.timeout:g} s deadline "
            f"({impl.hook}); raise [host.call_timeouts] {impl.plugin} = <seconds> if it needs "
            "longer, or fix the plugin",
            impl.plugin,
        )

    def _suggest(self, event_name: str) -> str | None:
        """The declared commands closest to ``event_name``, else its action in a close namespace."""
        declared = [
            caps
            for name, plugin in self._pm.list_name_plugin()
            if (caps := self._declared(name, plugin)) is not None
        ]
        commands = [command for caps in declared for command in caps.commands]
        namespace, action = split_event_name(event_name)
        spaces = close_matches(namespace, [ns for caps in declared for ns in caps.event_namespaces])
        return did_you_mean(event_name, commands) or did_you_mean(
            event_name, [f"{ns}:{action}" for ns in spaces]
        )

    def _handler_failed(self, plugin: str, event_name: str) -> dict[str, Any]:
        return self._error(
            ErrorCode.INTERNAL_ERROR,
            f"plugin {plugin!r} failed while handling {event_name!r}; see the host's log",
            plugin,
        )

    def _build_route(self, event_name: str) -> _Route:
        namespace, _ = split_event_name(event_name)
        hooks = self._pm.hook
        filters: tuple[_Impl, ...] = ()
        validators: tuple[_Impl, ...] = ()
        if event_name not in DIAGNOSTIC_EVENTS:
            filters = self._select(hooks.ksi_filter_event, namespace, event_name)
            validators = self._select(hooks.ksi_validate_event, namespace, event_name)
        wrap = self._wrapper("ksi_handle_event", namespace)
        handlers = tuple(
            _Impl(
                impl,
                event_name,
                _HANDLE_ARGS,
                self._context_for(impl.plugin_name),
                self._call_timeout(impl.plugin_name),
                self._handler_stats.setdefault(impl.plugin_name, [0, 0, 0]),
                wrap,
            )
            for impl in self._routed(hooks.ksi_handle_event, namespace, event_name)
            if self._owners.get(event_name, impl.plugin_name) == impl.plugin_name
        )
        route = _Route(
            namespace=namespace,
            count=self._events.setdefault(namespace, [0]),
            filters=filters,
            validators=validators,
            handlers=handlers,
        )
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[event_name] = route
        return route

    def _select(
        self, caller: pluggy.HookCaller, namespace: str, event_name: str
    ) -> tuple[_Impl, ...]:
        wrap = self._wrapper(caller.name, namespace)
        return tuple(
            _Impl(
                impl,
                event_name,
                _FILTER_ARGS,
                self._context_for(impl.plugin_name),
                self._call_timeout(impl.plugin_name),
                wrap=wrap,
            )
            for impl in self._routed(caller, namespace, event_name)
        )

    def _wrapper(self, hook: str, namespace: str) -> CallWrapper | None:
        """How to wrap the calls of ``hook`` for events of ``namespace``: not at all here."""
        return None

    def _routed(
        self, caller: pluggy.HookCaller, namespace: str, event_name: str
    ) -> list[pluggy.HookImpl]:
        """The implementations that want this event, in pluggy's call order."""
        return [
            impl
            for impl in reversed(caller.get_hookimpls())
            if not (impl.hookwrapper or impl.wrapper) and self._wants(impl, namespace, event_name)
        ]

    def _wants(self, impl: pluggy.HookImpl, namespace: str, event_name: str) -> bool:
        if not self._routing:
            return True
        capabilities = self._declared(impl.plugin_name, impl.plugin)
        return (
            capabilities is None
            or capabilities.routes_everything
            or namespace in capabilities.event_namespaces
            or event_name in capabilities.commands
        )

    def _declared(self, plugin_name: str, plugin: object) -> PluginCapabilities | None:
        """What a plugin declared to the host, else on itself; None routes it everything."""
        capabilities = self._capabilities.get(plugin_name)
        if capabilities is None:
            declared = getattr(plugin, "capabilities", None)
            capabilities = declared if isinstance(declared, PluginCapabilities) else None
        return capabilities


def _blame_stage(frame: FrameType) -> tuple[str, str, str | None] | None:
    impl = frame.f_locals.get("impl")
    if not isinstance(impl, _Impl):
        return None
    event = frame.f_locals.get("event_name")
    return impl.plugin, impl.hook, event if isinstance(event, str) else None


def _blame_hookimpl(frame: FrameType) -> tuple[str, str, str | None] | None:
    impl = frame.f_locals.get("impl")
    if not isinstance(impl, pluggy.HookImpl):
        return None
    return impl.plugin_name, hook_name(impl), None


def _blame_attributed(frame: FrameType) -> tuple[str, str, str | None] | None:
    blame = frame.f_locals.get("blame")
    return blame if isinstance(blame, tuple) else None


call_site(Dispatcher.dispatch, _blame_stage)
call_site(attributed, _blame_attributed)
call_site(call_hookimpl, _blame_hookimpl)
