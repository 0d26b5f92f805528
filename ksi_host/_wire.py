"""The private channel between the host and a plugin's worker process: framed JSON messages.

The channel is a ``socket.socketpair()``: one anonymous, full-duplex Unix socket per
worker, inherited by the worker as a file descriptor. Nothing else can connect to it
(it has no path), both ends learn at once when the other dies (EOF), and one socket
carries both directions, so requests from the worker (``emit``) and calls into it
share one ordered stream. Each message is a 4-byte big-endian length and a JSON
object. The first exchange is a handshake: the host's ``hello`` carries
``PROTOCOL_VERSION``, and a worker that speaks another answers ``fatal`` naming both,
as the host does for a ``ready`` with another version.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, Final

from ksi_host.replies import jsonable

__all__ = ["MAX_FRAME", "PROTOCOL_VERSION", "read_message", "write_message"]

PROTOCOL_VERSION: Final = 1
MAX_FRAME: Final = 64 * 1024 * 1024
_HEADER: Final = struct.Struct(">I")


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at EOF (the other side is gone)."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ValueError(f"a worker message of {size} bytes is over the {MAX_FRAME} limit")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError(f"a worker message must be a JSON object, not {type(message).__name__}")
    return message


def write_message(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    """Queue one message; values that are not JSON are turned into JSON (``jsonable``)."""
    try:
        body = json.dumps(message, allow_nan=False).encode()
    except (TypeError, ValueError):
        body = json.dumps(jsonable(message)).encode()
    writer.write(_HEADER.pack(len(body)) + body)
