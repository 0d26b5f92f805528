"""The guide's error reply and the stable codes it carries, for the host and plugins alike.

Every error a client can get, whether the socket refused the line, the host's pipeline
stopped the event or a plugin answered with an error, has this shape::

    {"status": "error", "error": {"code": "INVALID_INPUT", "message": "...", "plugin": "..."}}

``code`` is one of :class:`ErrorCode` (clients branch on it, never on the message) or a
code of the plugin's own in the same ``UPPER_SNAKE_CASE``; ``plugin`` names the plugin
at fault, when there is one.

>>> error_reply(ErrorCode.INVALID_INPUT, "'city' is missing")
{'status': 'error', 'error': {'code': 'INVALID_INPUT', 'message': "'city' is missing"}}
>>> error_reply("CITY_UNKNOWN", "no city 'Atlantis'", plugin="weather")["error"]["plugin"]
'weather'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any, Final

from pydantic import BaseModel

__all__ = ["ErrorCode", "error_reply", "jsonable"]

_CODE: Final = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")


class ErrorCode(str, Enum):
    """Every stable error code of ksi-host; ``docs/PROTOCOL.md`` says when each is sent.

    A member is its string value too (``ErrorCode.BLOCKED == "BLOCKED"``), so a reply
    read back from JSON compares equal to it.
    """

    # The line could not be read as a request.
    INVALID_ENCODING = "INVALID_ENCODING"
    INVALID_JSON = "INVALID_JSON"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_EVENT_NAME = "INVALID_EVENT_NAME"
    # The connection broke a limit or was refused; the server closes it after the reply.
    LINE_TOO_LONG = "LINE_TOO_LONG"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    PEER_REFUSED = "PEER_REFUSED"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    # The request was read but not answered: the host's pipeline or a plugin said why.
    NO_HANDLER = "NO_HANDLER"
    BLOCKED = "BLOCKED"
    INVALID_INPUT = "INVALID_INPUT"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    UNAVAILABLE = "UNAVAILABLE"
    EMIT_TOO_DEEP = "EMIT_TOO_DEEP"
    TIMEOUT = "TIMEOUT"
    PLUGIN_CRASHED = "PLUGIN_CRASHED"

    def __str__(self) -> str:
        return self.value


def error_reply(
    code: ErrorCode | str, message: str, *, plugin: str | None = None
) -> dict[str, Any]:
    """The guide's error shape: what went wrong (``code``), how to fix it (``message``), who.

    ``code`` is an :class:`ErrorCode` or a plugin's own ``UPPER_SNAKE_CASE`` code;
    anything else (``"invalid input"``, ``""``) raises ``ValueError``.
    """
    value = code.value if isinstance(code, ErrorCode) else code
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError(
            f"error code {value!r} is not an ErrorCode or an UPPER_SNAKE_CASE string; "
            "use e.g. ErrorCode.INVALID_INPUT, or a code of your own like 'CITY_UNKNOWN'"
        )
    if not isinstance(message, str):
        raise TypeError(f"an error message is a str, not {type(message).__name__}")
    error: dict[str, Any] = {"code": value, "message": message}
    if plugin is not None:
        error["plugin"] = plugin
    return {"status": "error", "error": error}


def jsonable(value: object) -> Any:
    """Turn host-side values (pydantic models, dataclasses, enums, paths) into JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
