"""What is being served right now: the socket request's event and correlation id.

The server sets it for each request; the dispatcher's trace lines and the JSON log
lines read it, and tasks and events emitted while handling the request inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final

__all__ = ["CURRENT_REQUEST", "current_correlation_id"]

CURRENT_REQUEST: Final[ContextVar[tuple[str, str | int | None] | None]] = ContextVar(
    "ksi_current_request", default=None
)
"""``(event, correlation_id)`` of the socket request being served, or None."""


def current_correlation_id() -> str | int | None:
    """The correlation id of the request being served, if any."""
    request = CURRENT_REQUEST.get()
    return None if request is None else request[1]
