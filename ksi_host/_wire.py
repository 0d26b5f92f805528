"""The private channel between the host and a plugin's worker process: framed JSON messages.

The channel is a ``socket.socketpair()``: one anonymous, full-duplex Unix socket per
worker, inherited by the worker as a file descriptor. Nothing else can connect to it
(it has no path), both ends learn at once when the other dies (EOF), and one socket
carries both directions, so requests from the worker (``emit``) and calls into it
share one ordered stream. Each message is a 4-byte big-endian length and a JSON
object. The first exchange is a handshake: the host's ``hello`` carries
``PROTOCOL_VERSION``, and a worker that speaks another answers ``fatal`` naming both,
as the host does for a ``ready`` with another version.

A second socketpair carries the few questions a plugin asks without awaiting
(``event_bus.get_event_history`` is a plain function in the guide): the worker sends
``history`` and blocks on that socket until the host answers, which the host, never
waiting on the worker, does at once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any, Final

from ksi_host.replies import jsonable

__all__ = [
    "MAX_FRAME",
    "PROTOCOL_VERSION",
    "encode_message",
    "read_message",
    "receive_message",
    "write_message",
]

PROTOCOL_VERSION: Final = 2
MAX_FRAME: Final = 64 * 1024 * 1024
_HEADER: Final = struct.Struct(">I")


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at EOF (the other side is gone)."""
    try:
        header = await reader.readexactly(_HEADER.size)
        body = await reader.readexactly(_size(header))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return _decode(body)


def _decode(body: bytes) -> dict[str, Any]:
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError(f"a worker message must be a JSON object, not {type(message).__name__}")
    return message


def _size(header: bytes) -> int:
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"a worker message of {size} bytes is over the {MAX_FRAME} limit")
    return int(size)


def encode_message(message: dict[str, Any]) -> bytes:
    """One framed message; values that are not JSON are turned into JSON (``jsonable``)."""
    try:
        body = json.dumps(message, allow_nan=False).encode()
    except (TypeError, ValueError):
        body = json.dumps(jsonable(message)).encode()
    return _HEADER.pack(len(body)) + body


def write_message(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    """Queue one message (see :func:`encode_message`)."""
    writer.write(encode_message(message))


def receive_message(sock: socket.socket) -> dict[str, Any] | None:
    """The next message on a blocking socket, or None at EOF; the socket's timeout applies."""
    header = _receive_exactly(sock, _HEADER.size)
    if header is None:
        return None
    body = _receive_exactly(sock, _size(header))
    return None if body is None else _decode(body)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)
