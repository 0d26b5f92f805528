"""The plugin contract: the seven hooks of the KSI plugin guide, typed.

A plugin implements any of these with ``@hookimpl`` and the same argument names
(it may take fewer). Every hook may be a plain function or a coroutine function;
the host awaits coroutines. Results of ``None`` are dropped, as pluggy does.

:class:`~ksi_host.BasePlugin` declares each hook with these exact types (without
``@hookimpl``, so pluggy ignores them), so ``mypy --strict`` checks a subclass's
hook methods: a ``context`` annotated ``dict`` or a handler returning a list is an
error before the plugin ever runs.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final, TypeAlias

import pluggy

from ksi_host.context import PluginContext

__all__ = [
    "PROJECT_NAME",
    "Answer",
    "HookResult",
    "MaybeAwaitable",
    "hookspec",
]

PROJECT_NAME: Final = "ksi"
hookspec: Final = pluggy.HookspecMarker(PROJECT_NAME)

Answer: TypeAlias = dict[str, Any] | None
"""What a handler, filter, startup or metrics hook returns: a JSON object, or ``None``."""
MaybeAwaitable: TypeAlias = Answer | Awaitable[Answer]
"""An :data:`Answer`, or (from an ``async def`` hook) an awaitable of one."""
HookResult: TypeAlias = Awaitable[None] | None
"""What a hook whose result is ignored returns."""


@hookspec
def ksi_startup() -> MaybeAwaitable:
    """Start the plugin; called once, in load order, after ``ksi_plugin_context``.

    Return a status dict (e.g. ``{"status": "plugin_started"}``) or ``None``. Raising
    marks this plugin failed; the host stops plugins that depend on it and keeps the rest.
    """


@hookspec
def ksi_shutdown() -> object:
    """Stop the plugin; called once, in reverse load order; what it returns is ignored.

    Raising is logged and does not stop the other plugins from shutting down.
    """


@hookspec
def ksi_plugin_context(context: PluginContext[Any]) -> HookResult:
    """Receive the plugin's :class:`~ksi_host.PluginContext` before startup.

    It is also a read-only mapping: ``context.get("config", {})``,
    ``context.get("event_bus")`` and ``context.get("emit")`` work as the guide shows.
    """


@hookspec
def ksi_handle_event(
    event_name: str, data: dict[str, Any], context: PluginContext[Any]
) -> MaybeAwaitable:
    """Handle an event that passed filtering and validation.

    Return the answer (a JSON-serialisable dict), or ``None`` when the event is not
    for this plugin. A raised exception costs only this handler's answer.
    """


@hookspec
def ksi_filter_event(event_name: str, data: dict[str, Any]) -> MaybeAwaitable:
    """Modify an event before it is validated and handled.

    Return the (possibly modified) data, or ``None`` to block the event. Filters run
    in hook order, each seeing the previous filter's output.
    """


@hookspec
def ksi_validate_event(event_name: str, data: dict[str, Any]) -> HookResult:
    """Check an event's data; raise (e.g. ``ValueError``) to reject it.

    The exception's message is returned to the sender as ``INVALID_INPUT``.
    """


@hookspec
def ksi_metrics_collected(metrics: dict[str, Any]) -> MaybeAwaitable:
    """Add this plugin's metrics to ``metrics`` (usually under its name) and return it."""
