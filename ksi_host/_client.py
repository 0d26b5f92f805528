"""Talk to a running daemon: one request, one reply, with errors that say how to fix things."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ksi_host._defaults import DEFAULT_MAX_LINE_BYTES, REQUEST_TIMEOUT
from ksi_host._protocol import ErrorData, Reply
from ksi_host.errors import (
    DaemonNotRunning,
    DaemonUnreachable,
    ProtocolError,
    RequestTimeout,
)

__all__ = [
    "request",
    "request_sync",
]


async def request(
    socket_path: Path | str,
    event: str,
    data: dict[str, Any] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> dict[str, Any]:
    """Send one event and return the reply's ``data`` (the answer or the error shape)."""
    path = Path(socket_path)
    try:
        return await asyncio.wait_for(_exchange(path, event, data or {}), timeout)
    except asyncio.TimeoutError:
        raise RequestTimeout(socket_path=path, event=event, timeout=timeout) from None


async def _exchange(path: Path, event: str, data: dict[str, Any]) -> dict[str, Any]:
    try:
        reader, writer = await asyncio.open_unix_connection(
            str(path), limit=DEFAULT_MAX_LINE_BYTES * 4
        )
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise DaemonNotRunning(socket_path=path, detail=exc.strerror or str(exc)) from None
    except PermissionError as exc:
        raise DaemonUnreachable(socket_path=path, detail=exc.strerror or str(exc)) from None
    correlation_id = uuid.uuid4().hex
    try:
        line = json.dumps({"event": event, "data": data, "correlation_id": correlation_id})
        writer.write(line.encode() + b"\n")
        await writer.drain()
        while True:
            raw = await reader.readline()
            if not raw:
                raise ProtocolError(socket_path=path, detail="the connection closed without one")
            reply = _decode(path, raw)
            if reply.correlation_id in (correlation_id, None):
                break
    except ConnectionError as exc:
        raise DaemonUnreachable(socket_path=path, detail=str(exc)) from None
    finally:
        writer.close()
    answer = reply.data
    if reply.correlation_id is None and _code(answer) == "PEER_REFUSED":
        raise DaemonUnreachable(socket_path=path, detail=answer["error"]["message"])
    return answer


def _decode(path: Path, raw: bytes) -> Reply:
    try:
        return Reply.model_validate_json(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(map(str, problem["loc"]))
        raise ProtocolError(
            socket_path=path, detail=f"{where + ': ' if where else ''}{problem['msg']}"
        ) from None


def _code(answer: dict[str, Any]) -> str | None:
    try:
        return ErrorData.model_validate(answer).error.code
    except ValidationError:
        return None


def request_sync(
    socket_path: Path | str,
    event: str,
    data: dict[str, Any] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> dict[str, Any]:
    """:func:`request` for code without an event loop (the CLI)."""
    return asyncio.run(request(socket_path, event, data, timeout))
