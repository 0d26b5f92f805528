"""Events on NATS: ``ns:action`` is subject ``ksi.ns.action``, the payload the socket's JSON.

Event names are ``[a-z][a-z0-9_-]*`` on both sides of the colon, so a subject built
from one never holds a character NATS reserves (``.``, ``*``, ``>``, spaces). A
request's payload is the socket's request object and its reply the socket's reply
object (see ``docs/PROTOCOL.md``), each without the trailing newline. Headers carry
what the socket has no field for: where the message comes from, and the chain of
events it was emitted inside (so ``[host] max_emit_depth`` bounds loops across hosts).

>>> subject_for("orders:create")
'ksi.orders.create'
>>> event_for("ksi.orders.create")
'orders:create'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic_core import to_json

from ksi_host.errors import InvalidEventName
from ksi_host.events import check_event_name, split_event_name

__all__ = [
    "CHAIN_HEADER",
    "INBOUND",
    "ORIGIN_HEADER",
    "ROOT",
    "chain_from",
    "chain_header",
    "encode_message",
    "event_for",
    "namespace_subject",
    "reply_data",
    "subject_for",
]

ROOT: Final = "ksi"
ORIGIN_HEADER: Final = "Ksi-Origin"
CHAIN_HEADER: Final = "Ksi-Chain"
INBOUND: Final = "nats"
"""The context key of an event that arrived over NATS: ``{"origin": ..., "subject": ...}``."""


def subject_for(event_name: str) -> str:
    """The subject an event travels on."""
    namespace, action = split_event_name(event_name)
    return f"{ROOT}.{namespace}.{action}"


def namespace_subject(namespace: str) -> str:
    """The wildcard subject of every event of ``namespace``."""
    return f"{ROOT}.{namespace}.>"


def event_for(subject: str) -> str | None:
    """The event a subject stands for, or ``None`` when it is not an event's subject."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != ROOT:
        return None
    try:
        return check_event_name(f"{parts[1]}:{parts[2]}")
    except InvalidEventName:
        return None


def encode_message(event_name: str, data: Mapping[str, Any], correlation_id: str | None) -> bytes:
    """A request or publication: the socket's request object (values JSON cannot hold as text)."""
    message = {"event": event_name, "data": data, "correlation_id": correlation_id}
    return to_json(message, inf_nan_mode="null", fallback=str)


def reply_data(payload: bytes, correlation_id: str) -> dict[str, Any]:
    """The answer in a reply; ``ValueError`` saying why when it is not a ksi reply to us."""
    try:
        reply = json.loads(payload)
    except ValueError as exc:
        raise ValueError(f"the reply is not JSON ({exc})") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("data"), dict):
        raise ValueError("the reply is not a ksi reply object with a 'data' object")
    if reply.get("correlation_id") != correlation_id:
        raise ValueError(
            f"the reply carries correlation_id {reply.get('correlation_id')!r}, "
            f"not the request's {correlation_id!r}"
        )
    data: dict[str, Any] = reply["data"]
    return data


def chain_header(chain: tuple[str, ...]) -> str:
    """The emit chain as a header value: event names, comma-separated."""
    return ",".join(chain)


def chain_from(value: str | None) -> tuple[str, ...]:
    """The emit chain a header carries (names that are not events are dropped)."""
    if not value:
        return ()
    chain = []
    for name in value.split(","):
        try:
            chain.append(check_event_name(name))
        except InvalidEventName:
            continue
    return tuple(chain)
