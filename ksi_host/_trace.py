"""Tracing: one log line per hook call the host makes and per dispatch stage.

Turned on by ``KSI_TRACE=1`` (or ``KSI_TRACE=state,system`` for some namespaces), by
``ksi-host run --trace [--trace-namespace NS]``, or by passing :class:`TraceSettings`
to a ``Host``. Lines go to the ``ksi_host.trace`` logger at INFO, each with the
plugin, hook, event name, correlation id, duration and the kind of result as
record attributes (``--log-format json`` prints them as fields)::

    event=system:health cid=42 stage=receive
    event=system:health cid=42 hook=ksi_handle_event plugin=health result=answer ms=0.031
    event=system:health cid=42 stage=reply result=answer ms=0.112

Off, nothing here is on the dispatch path: the dispatcher wraps its calls only when
a host is built with tracing on, so the untraced pipeline is exactly the code that
runs without this module.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pluggy

from ksi_host._current import current_correlation_id
from ksi_host._dispatch import CallWrapper, Dispatcher, EventObserver, call_hookimpl
from ksi_host.context import PluginContext as EventContext

__all__ = [
    "TRACE_LOGGER",
    "TraceSettings",
    "Tracer",
    "TracingDispatcher",
    "make_dispatcher",
    "reply_kind",
    "result_kind",
]

_DISPATCH_LOGGER: Final = logging.getLogger("ksi_host.dispatch")

TRACE_LOGGER: Final = logging.getLogger("ksi_host.trace")


_ON: Final = frozenset({"1", "true", "yes", "on", "all", "*"})
_OFF: Final = frozenset({"", "0", "false", "no", "off"})
_HOOK_KINDS: Final = {
    "ksi_filter_event": ("passed", "blocked"),
    "ksi_validate_event": ("valid", "valid"),
}


@dataclass(frozen=True)
class TraceSettings:
    """Whether to trace, and which event namespaces (empty: all of them)."""

    enabled: bool = False
    namespaces: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TraceSettings:
        """``KSI_TRACE``: ``1``/``true``/``all`` traces everything, ``ns1,ns2`` those namespaces."""
        value = (os.environ if env is None else env).get("KSI_TRACE", "").strip()
        if value.lower() in _OFF:
            return cls()
        if value.lower() in _ON:
            return cls(enabled=True)
        return cls(enabled=True, namespaces=frozenset(_split(value)))

    def limited_to(self, namespaces: Collection[str]) -> TraceSettings:
        """These settings, on, and restricted to ``namespaces`` as well (when given)."""
        extra = frozenset(ns for value in namespaces for ns in _split(value))
        return TraceSettings(enabled=True, namespaces=self.namespaces | extra)

    def wants(self, namespace: str) -> bool:
        """Whether events of ``namespace`` are traced."""
        return self.enabled and (not self.namespaces or namespace in self.namespaces)


def _split(value: str) -> list[str]:
    return [part.strip().rstrip(":*") for part in value.split(",") if part.strip()]


def result_kind(hook: str, result: object) -> str:
    """``answer``/``None`` for handlers, ``passed``/``blocked`` for filters, ``valid``."""
    ok, none = _HOOK_KINDS.get(hook, ("answer", "None"))
    return none if result is None else ok


def reply_kind(answer: object) -> str:
    """What the dispatcher answered: ``answer``, ``multiple``, or ``error CODE``."""
    if isinstance(answer, dict):
        status = answer.get("status")
        if status == "multiple":
            return "multiple"
        error = answer.get("error")
        if status == "error" and isinstance(error, dict):
            return f"error {error.get('code')}"
    return "answer"


class Tracer:
    """Writes the trace lines; built once per host from its :class:`TraceSettings`."""

    def __init__(self, settings: TraceSettings) -> None:
        self.settings: Final = settings
        if settings.enabled:
            _make_visible()

    def wants(self, namespace: str) -> bool:
        return self.settings.wants(namespace)

    @property
    def lifecycle(self) -> bool:
        """Whether to trace hooks outside events (startup, shutdown, metrics): unless limited."""
        return self.settings.enabled and not self.settings.namespaces

    def line(
        self,
        *,
        event: str | None,
        result: str,
        started: int | None = None,
        plugin: str | None = None,
        hook: str | None = None,
        stage: str | None = None,
        detail: str = "",
    ) -> None:
        """One trace line; ``started`` is a ``perf_counter_ns`` value to measure from."""
        cid = current_correlation_id()
        ms = None if started is None else (time.perf_counter_ns() - started) / 1e6
        parts = (
            [] if event is None else [f"event={event}", f"cid={cid if cid is not None else '-'}"]
        )
        if stage:
            parts.append(f"stage={stage}")
        if hook:
            parts.append(f"hook={hook}")
        if plugin:
            parts.append(f"plugin={plugin}")
        if result:
            parts.append(f"result={result}")
        if ms is not None:
            parts.append(f"ms={ms:.3f}")
        if detail:
            parts.append(detail)
        TRACE_LOGGER.info(
            " ".join(parts),
            extra={
                "plugin": plugin,
                "event": event,
                "correlation_id": cid,
                "hook": hook,
                "stage": stage,
                "result": result,
                "duration_ms": ms,
            },
        )

    async def call_hook(self, impl: pluggy.HookImpl, hook: str, **kwargs: Any) -> Any:
        """:func:`call_hookimpl` for a hook outside events (startup, shutdown, metrics)."""
        if not self.lifecycle:
            return await call_hookimpl(impl, **kwargs)
        started = time.perf_counter_ns()
        try:
            result = await call_hookimpl(impl, **kwargs)
        except asyncio.CancelledError:
            self.line(
                event=None, plugin=impl.plugin_name, hook=hook, result="cancelled", started=started
            )
            raise
        except Exception as exc:
            self._failed(None, impl.plugin_name, hook, started, exc)
            raise
        self.line(
            event=None,
            plugin=impl.plugin_name,
            hook=hook,
            result=result_kind(hook, result),
            started=started,
        )
        return result

    def wrap(self, call: Callable[..., Any], *, plugin: str, hook: str) -> Callable[..., Any]:
        """``call`` (an event hook taking the event name first), traced."""

        def traced(event_name: str, *args: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                result = call(event_name, *args)
            except Exception as exc:
                self._failed(event_name, plugin, hook, started, exc)
                raise
            if inspect.isawaitable(result):
                return self._awaited(result, event_name, plugin, hook, started)
            return self._answered(result, event_name, plugin, hook, started)

        return traced

    async def _awaited(
        self, pending: Awaitable[Any], event_name: str, plugin: str, hook: str, started: int
    ) -> Any:
        try:
            result = await pending
        except Exception as exc:
            self._failed(event_name, plugin, hook, started, exc)
            raise
        return self._answered(result, event_name, plugin, hook, started)

    def _answered(self, result: Any, event_name: str, plugin: str, hook: str, started: int) -> Any:
        """``result``, after its trace line."""
        self.line(
            event=event_name,
            plugin=plugin,
            hook=hook,
            result=result_kind(hook, result),
            started=started,
        )
        return result

    def _failed(
        self, event_name: str | None, plugin: str, hook: str, started: int, exc: Exception
    ) -> None:
        kind = "invalid" if hook == "ksi_validate_event" else "error"
        self.line(
            event=event_name,
            plugin=plugin,
            hook=hook,
            result=kind,
            started=started,
            detail=f"({type(exc).__name__}: {exc})",
        )


def _make_visible() -> None:
    """Let trace lines through even where nobody configured logging (a plain script)."""
    if TRACE_LOGGER.getEffectiveLevel() > logging.INFO:
        TRACE_LOGGER.setLevel(logging.INFO)
    if not TRACE_LOGGER.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        TRACE_LOGGER.addHandler(handler)


class _TracedObserver:
    """The event bus, with a trace line when it notifies listeners of an event."""

    def __init__(self, observer: EventObserver, tracer: Tracer) -> None:
        self._observer = observer
        self._tracer = tracer

    def record(self, event_name: str, namespace: str, data: dict[str, Any]) -> bool:
        return self._observer.record(event_name, namespace, data)

    async def notify(self, event_name: str, data: dict[str, Any]) -> None:
        if not self._tracer.wants(event_name.partition(":")[0]):
            await self._observer.notify(event_name, data)
            return
        started = time.perf_counter_ns()
        await self._observer.notify(event_name, data)
        self._tracer.line(event=event_name, stage="notify", result="delivered", started=started)


class TracingDispatcher(Dispatcher):
    """A :class:`Dispatcher` that traces every stage and logs each event at DEBUG.

    A host uses it only when tracing is on or ``ksi_host.dispatch`` logs at DEBUG,
    so the plain dispatcher stays free of any check.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        context_for: Callable[[str], EventContext],
        observer: EventObserver,
        *,
        tracer: Tracer,
        **options: Any,
    ) -> None:
        """``options`` are :class:`Dispatcher`'s keyword arguments."""
        super().__init__(pm, context_for, _TracedObserver(observer, tracer), **options)
        self._tracer = tracer

    async def dispatch(
        self,
        event_name: str,
        data: dict[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        name = event_name if isinstance(event_name, str) else repr(event_name)
        traced = self._tracer.wants(name.partition(":")[0])
        if traced:
            self._tracer.line(event=name, stage="receive", result="")
        started = time.perf_counter_ns()
        answer = await super().dispatch(event_name, data, context)
        kind = reply_kind(answer)
        if traced:
            self._tracer.line(event=name, stage="reply", result=kind, started=started)
        if _DISPATCH_LOGGER.isEnabledFor(logging.DEBUG):
            _DISPATCH_LOGGER.debug(
                "%s -> %s in %.3f ms",
                name,
                kind,
                (time.perf_counter_ns() - started) / 1e6,
                extra={"event": name, "correlation_id": current_correlation_id()},
            )
        return answer

    def _too_deep(self, event_name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        answer = super()._too_deep(event_name, chain)
        name = str(event_name)
        if self._tracer.wants(name.partition(":")[0]):
            self._tracer.line(event=name, stage="emit", result=reply_kind(answer))
        return answer

    async def _fall_back(
        self,
        event_name: str,
        namespace: str,
        data: dict[str, Any],
        context: Mapping[str, Any] | None,
    ) -> Any:
        if not self._tracer.wants(namespace):
            return await super()._fall_back(event_name, namespace, data, context)
        started = time.perf_counter_ns()
        answer = await super()._fall_back(event_name, namespace, data, context)
        plugin = self._fallbacks[namespace][0] if namespace in self._fallbacks else None
        self._tracer.line(
            event=event_name,
            stage="fallback",
            plugin=plugin,
            result=reply_kind(answer),
            started=started,
        )
        return answer

    def _wrapper(self, hook: str, namespace: str) -> CallWrapper | None:
        if not self._tracer.wants(namespace):
            return None
        tracer = self._tracer

        def wrap(call: Callable[..., Any], plugin: str) -> Callable[..., Any]:
            return tracer.wrap(call, plugin=plugin, hook=hook)

        return wrap


def make_dispatcher(
    pm: pluggy.PluginManager,
    context_for: Callable[[str], EventContext],
    observer: EventObserver,
    *,
    tracer: Tracer,
    **options: Any,
) -> Dispatcher:
    """The traced dispatcher only when something will read its lines, else the plain one.

    ``options`` are :class:`Dispatcher`'s keyword arguments, passed on as they are.
    """
    if tracer.settings.enabled or _DISPATCH_LOGGER.isEnabledFor(logging.DEBUG):
        return TracingDispatcher(pm, context_for, observer, tracer=tracer, **options)
    return Dispatcher(pm, context_for, observer, **options)
