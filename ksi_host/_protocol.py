"""The wire format of the Unix socket: one JSON object per line, both ways.

A request names an event, carries its data and an optional correlation id; the
reply repeats the event and the id and carries the handler's answer, or the
guide's error shape. Parsing keeps a fast path (pydantic's JSON parser) and only
on failure works out which rule the line broke, so every bad line gets a precise
code and a message that says what to fix (see ``docs/PROTOCOL.md``).

>>> parse_request(b'{"event": "system:health", "correlation_id": "1"}')
Request(event='system:health', data={}, correlation_id='1')
>>> parse_request(b'[1]').code
<ErrorCode.NOT_AN_OBJECT: 'NOT_AN_OBJECT'>
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticSerializationError, to_json

try:
    import orjson
except ImportError:  # no wheel for this platform: pydantic-core writes every reply
    orjson = None  # type: ignore[assignment]

from ksi_host.errors import InvalidEventName
from ksi_host.events import EVENT_NAME_PATTERN, split_event_name
from ksi_host.replies import ErrorCode, error_reply

__all__ = [
    "MAX_CORRELATION_ID",
    "CorrelationId",
    "ErrorBody",
    "ErrorData",
    "ProtocolFailure",
    "Reply",
    "Request",
    "encode_reply",
    "parse_request",
]

MAX_CORRELATION_ID: Final = 256

_orjson_dumps: Final = orjson.dumps if orjson is not None else None
_ORJSON_OPTIONS: Final = (
    orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    if orjson is not None
    else 0
)


CorrelationId = Annotated[
    Annotated[StrictStr, StringConstraints(max_length=MAX_CORRELATION_ID)] | StrictInt | None,
    # Strict branches cannot both fit: the first that does is the one, without trying the rest.
    Field(union_mode="left_to_right"),
]
EventName = Annotated[str, StringConstraints(pattern=EVENT_NAME_PATTERN)]


class Request(BaseModel):
    """One line from a client: ``{"event": "ns:action", "data": {...}, "correlation_id": ...}``.

    Every rule is checked by pydantic-core while it parses (no Python validator runs for a
    valid request); :func:`parse_request` explains a broken one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: EventName
    data: dict[str, Any] = Field(default_factory=dict)
    correlation_id: CorrelationId = None


_validate_json: Final = Request.__pydantic_validator__.validate_json
"""pydantic-core's parser and validator, straight from bytes: without the Python layer
of ``model_validate_json``, which costs about as much again for a small request."""


class ErrorBody(BaseModel):
    """The inner part of the guide's error shape, as :func:`ksi_host.error_reply` builds it.

    This model and the two below read replies (the clients): built on first use
    (``defer_build``), never by a daemon, which only writes them.
    """

    model_config = ConfigDict(defer_build=True)

    code: str
    message: str
    plugin: str | None = None


class ErrorData(BaseModel):
    """The guide's error shape: ``{"status": "error", "error": {"code", "message"}}``."""

    model_config = ConfigDict(defer_build=True)

    status: Literal["error"] = "error"
    error: ErrorBody


class Reply(BaseModel):
    """One line to a client: the request's event and id, and the answer in ``data``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    event: str | None
    correlation_id: CorrelationId
    data: dict[str, Any]


@dataclass(frozen=True)
class ProtocolFailure:
    """A line that is not a valid request; keeps what could be salvaged for the reply."""

    code: ErrorCode
    message: str
    event: str | None = None
    correlation_id: str | int | None = None


def parse_request(line: bytes | bytearray, unit: str = "line") -> Request | ProtocolFailure:
    """Read one line as a request (its newline is JSON whitespace), or say what is wrong.

    ``unit`` is what carries one request on the transport, for the error messages: a
    ``line`` on the Unix socket, a ``message`` on WebSocket.
    """
    try:
        return _validate_json(line)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return _diagnose(bytes(line), exc, unit)


def _diagnose(line: bytes, fast: ValidationError, unit: str) -> Request | ProtocolFailure:
    """Say which rule ``line`` broke; ``fast`` is what the fast path's parser said.

    The fast parser's verdict on the JSON itself is final: it bounds nesting depth and
    number size, which ``json.loads`` does not (it raises ``RecursionError`` or, for
    integers of thousands of digits, ``ValueError``), so ``json.loads`` is asked only
    for its friendlier message about a line the fast parser already refused.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ProtocolFailure(
            ErrorCode.INVALID_ENCODING,
            f"the {unit} is not UTF-8 (byte {exc.start} is {line[exc.start : exc.start + 1]!r}); "
            "send requests as UTF-8 JSON",
        )
    invalid = [err for err in fast.errors() if err["type"] == "json_invalid"]
    if invalid:
        return ProtocolFailure(
            ErrorCode.INVALID_JSON,
            f"the {unit} is not JSON: {_json_problem(text, str(invalid[0]['msg']))}; send one "
            f"JSON object per {unit}, nested at most 200 deep, e.g. "
            '{"event": "system:health", "data": {}, "correlation_id": "1"}',
        )
    obj = json.loads(text)
    if not isinstance(obj, dict):
        return ProtocolFailure(
            ErrorCode.NOT_AN_OBJECT,
            f"a request must be a JSON object, not {_json_type(obj)}; "
            'e.g. {"event": "system:health", "data": {}}',
        )
    event = obj.get("event") if isinstance(obj.get("event"), str) else None
    raw_id = obj.get("correlation_id")
    valid_id = isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool)
    correlation_id = raw_id if valid_id and len(str(raw_id)) <= MAX_CORRELATION_ID else None
    try:
        return Request.model_validate(obj)
    except ValidationError as exc:
        code, message = _explain(exc)
        return ProtocolFailure(code, message, event=event, correlation_id=correlation_id)


def _json_problem(text: str, fast_message: str) -> str:
    """``json.loads``'s wording where it has one, else the fast parser's."""
    fast_problem = fast_message.removeprefix("Invalid JSON: ")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at column {exc.colno}"
    except (RecursionError, ValueError):
        return fast_problem  # too deep, or an integer too long, for json.loads too
    return fast_problem  # JSON to json.loads, but past the fast parser's depth or size bound


_FIELD_HELP: Final[dict[str, str]] = {
    "event": "'event' must be a string 'namespace:action', e.g. \"system:health\"",
    "data": "'data' must be a JSON object (or left out for {})",
    "correlation_id": "'correlation_id' must be a string or an integer (or left out)",
}


def _explain(exc: ValidationError) -> tuple[ErrorCode, str]:
    """The code and one problem per field (a union reports each of its branches)."""
    problems: dict[str, str] = {}
    code = ErrorCode.INVALID_REQUEST
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        if field in problems:
            continue
        if err["type"] == "missing":
            problems[field] = f"'{field}' is missing; {_FIELD_HELP.get(field, '')}"
        elif err["type"] == "extra_forbidden":
            problems[field] = (
                f"unknown field '{field}'; a request has only 'event', 'data' and 'correlation_id'"
            )
        elif field == "event" and (invalid := _invalid_event(err["input"])) is not None:
            code = ErrorCode.INVALID_EVENT_NAME
            problems[field] = f"{invalid.what}; {invalid.hint}"
        elif field == "correlation_id" and err["type"] == "string_too_long":
            problems[field] = (
                f"a correlation_id is at most {MAX_CORRELATION_ID} characters: {_FIELD_HELP[field]}"
            )
        else:
            problems[field] = f"{err['msg']}: {_FIELD_HELP.get(field, field)}"
    return code, "; ".join(problems.values())


def _invalid_event(value: object) -> InvalidEventName | None:
    """Why ``value``, a string, is not an event name (None if it is one, or not a string)."""
    if not isinstance(value, str):
        return None
    try:
        split_event_name(value)
    except InvalidEventName as invalid:
        return invalid
    return None


def _json_type(obj: object) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, bool):
        return "a boolean"
    if obj is None:
        return "null"
    return "a number"


def encode_reply(event: str | None, correlation_id: str | int | None, data: object) -> bytes:
    """Serialise a reply line; an answer that cannot go on the wire becomes an error reply."""
    if not isinstance(data, dict):
        data = error_reply(
            ErrorCode.INTERNAL_ERROR,
            f"the handler of {event!r} answered with {type(data).__name__}, not a dict; "
            "a handler must return a JSON object",
        )
    try:
        return _line({"event": event, "correlation_id": correlation_id, "data": data})
    except PydanticSerializationError as exc:
        failed = error_reply(
            ErrorCode.INTERNAL_ERROR,
            f"the answer of {event!r} cannot be sent as JSON ({exc}); "
            "a handler must return JSON-serialisable values",
        )
        return _line({"event": event, "correlation_id": correlation_id, "data": failed})


def _line(reply: dict[str, Any]) -> bytes:
    """One JSON line; NaN and infinities (not JSON) become ``null``, as ``JSON.stringify`` does.

    pydantic-core's encoding is the reference. orjson, where it is installed, writes the
    usual reply (dicts, lists, strings, numbers, ``None``, booleans) byte for byte the
    same, in about a third of the time; what it would write otherwise (subclasses,
    datetimes, dataclasses) or cannot (integers past 64 bits, keys that are not strings,
    other types) it refuses, and pydantic-core writes that reply.
    """
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(reply, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError
            pass
    return to_json(reply, inf_nan_mode="null", fallback=_mapping) + b"\n"


def _mapping(value: object) -> dict[Any, Any]:
    """Any read-only mapping (such as a plugin's ``context.config``) goes out as an object."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"Unable to serialize unknown type: {type(value)}")
