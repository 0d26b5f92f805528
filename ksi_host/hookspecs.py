"""The plugin contract: the seven hooks of the KSI plugin guide.

A plugin implements any of these with ``@hookimpl`` and the same argument names
(it may take fewer). Every hook may be a plain function or a coroutine function;
the host awaits coroutines. Results of ``None`` are dropped, as pluggy does.
"""

from __future__ import annotations

from typing import Any, Final

import pluggy

__all__ = ["PROJECT_NAME", "hookspec"]

PROJECT_NAME: Final = "ksi"
hookspec: Final = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def ksi_startup() -> Any:
    """Start the plugin; called once, in load order, after ``ksi_plugin_context``.

    Return a status dict (e.g. ``{"status": "plugin_started"}``) or ``None``. Raising
    marks this plugin failed; the host stops plugins that depend on it and keeps the rest.
    """


@hookspec
def ksi_shutdown() -> Any:
    """Stop the plugin; called once, in reverse load order.

    Raising is logged and does not stop the other plugins from shutting down.
    """


@hookspec
def ksi_plugin_context(context: dict[str, Any]) -> Any:
    """Receive the plugin's context before startup.

    ``context`` holds ``"event_bus"``, ``"config"`` (the whole host config) and
    ``"emit"`` (a coroutine function ``emit(event_name, data)``).
    """


@hookspec
def ksi_handle_event(event_name: str, data: dict[str, Any], context: Any) -> Any:
    """Handle an event that passed filtering and validation.

    Return the answer (a JSON-serialisable dict), or ``None`` when the event is not
    for this plugin. A raised exception costs only this handler's answer.
    """


@hookspec
def ksi_filter_event(event_name: str, data: dict[str, Any]) -> Any:
    """Modify an event before it is validated and handled.

    Return the (possibly modified) data, or ``None`` to block the event. Filters run
    in hook order, each seeing the previous filter's output.
    """


@hookspec
def ksi_validate_event(event_name: str, data: dict[str, Any]) -> Any:
    """Check an event's data; raise (e.g. ``ValueError``) to reject it.

    The exception's message is returned to the sender as ``INVALID_INPUT``.
    """


@hookspec
def ksi_metrics_collected(metrics: dict[str, Any]) -> Any:
    """Add this plugin's metrics to ``metrics`` (usually under its name) and return it."""
