"""``ksi-host send --websocket URL``: one request over WebSocket, one reply."""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import connect

from ksi_host._defaults import DEFAULT_MAX_LINE_BYTES
from ksi_host._protocol import Reply
from ksi_host.errors import WebSocketRequestFailed

__all__ = ["request_websocket"]


def request_websocket(
    url: str, token: str, event: str, data: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Send one event with the token as a Bearer header; return the reply's ``data``."""
    correlation_id = uuid.uuid4().hex
    message = json.dumps({"event": event, "data": data, "correlation_id": correlation_id})
    try:
        with connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=timeout,
            max_size=4 * DEFAULT_MAX_LINE_BYTES,
            compression=None,
        ) as connection:
            connection.send(message)
            while True:
                reply = _decode(url, connection.recv(timeout=timeout))
                if reply.correlation_id in (correlation_id, None):
                    return reply.data
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        hint = (
            "pass --token, or run send as the user whose daemon wrote the token file"
            if status == 401
            else "see the reason above"
        )
        raise WebSocketRequestFailed(
            url=url, what=f"the daemon refused the connection (HTTP {status}): {body}", hint=hint
        ) from None
    except InvalidURI as exc:
        raise WebSocketRequestFailed(
            url=url, what=f"not a WebSocket URL: {exc}", hint="use ws://HOST:PORT"
        ) from None
    except TimeoutError:
        raise WebSocketRequestFailed(
            url=url,
            what=f"no reply to {event!r} within {timeout:g}s",
            hint="the daemon may be busy or stuck; retry with a larger --timeout",
        ) from None
    except (OSError, InvalidHandshake, ConnectionClosed) as exc:
        raise WebSocketRequestFailed(
            url=url,
            what=f"cannot talk to the daemon over WebSocket: {exc}",
            hint="start it with [websocket] enabled = true in its config, and check the URL "
            "it logs ('listening on ws://...')",
        ) from None


def _decode(url: str, raw: str | bytes) -> Reply:
    try:
        return Reply.model_validate_json(raw)
    except ValidationError as exc:
        raise WebSocketRequestFailed(
            url=url,
            what=f"the daemon's answer is not a valid reply: {exc.errors()[0]['msg']}",
            hint="is something other than ksi-host listening on this port?",
        ) from None
