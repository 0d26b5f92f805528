"""One function per command: validated data in, result out; no hook machinery here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel

from {{ cookiecutter.module_name }}.models import EchoRequest, PingRequest, Settings

__all__ = ["COMMANDS", "Command", "echo", "ping"]

RequestT = TypeVar("RequestT", bound=BaseModel)


@dataclass(frozen=True)
class Command(Generic[RequestT]):
    """What one action accepts (checked by the plugin's validator) and the function answering it."""

    request: type[RequestT]
    handle: Callable[[RequestT, Settings], dict[str, Any]]


def ping(request: PingRequest, settings: Settings) -> dict[str, Any]:
    """Prove the plugin is loaded and routed to."""
    return {"reply": settings.reply}


def echo(request: EchoRequest, settings: Settings) -> dict[str, Any]:
    """Send the message back, to show validated input end to end."""
    return {"message": " ".join([request.message] * request.times)}


COMMANDS: Final[Mapping[str, Command[Any]]] = {
    "ping": Command(PingRequest, ping),
    "echo": Command(EchoRequest, echo),
}
"""Action (the part after ':') -> command; the plugin declares one event per entry."""
