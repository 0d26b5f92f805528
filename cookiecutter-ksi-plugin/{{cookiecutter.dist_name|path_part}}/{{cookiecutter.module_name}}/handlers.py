"""One function per command: validated data in, result out; no hook machinery here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from {{ cookiecutter.module_name }}.models import EchoRequest, PingRequest, Settings

__all__ = ["HANDLERS", "Handler", "echo", "ping"]

Handler = Callable[[Mapping[str, Any], Settings], dict[str, Any]]


def ping(data: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Prove the plugin is loaded and routed to."""
    PingRequest.model_validate(data)
    return {"reply": settings.reply}


def echo(data: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Send the message back, to show validated input end to end."""
    request = EchoRequest.model_validate(data)
    return {"message": " ".join([request.message] * request.times)}


HANDLERS: Final[Mapping[str, Handler]] = {"ping": ping, "echo": echo}
"""Action (the part after ':') -> handler; the plugin declares one command per entry."""
