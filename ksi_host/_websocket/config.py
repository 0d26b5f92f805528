"""The ``[websocket]`` section, the token file, and the one check of a missing library."""

from __future__ import annotations

import hmac
import importlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ksi_host._paths import KsiPaths
from ksi_host.errors import ConfigError, MissingExtra

__all__ = [
    "INSTALL",
    "TOKEN_FILE_NAME",
    "WebSocketConfig",
    "client_token",
    "read_token",
    "require_websockets",
    "send_websocket",
    "token_matches",
    "write_token",
]

INSTALL: Final = 'pip install "ksi-host[websocket]"'
TOKEN_FILE_NAME: Final = "websocket.token"


class WebSocketConfig(BaseModel):
    """``[websocket]``: off by default; where it listens, its token, the pages it lets in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: str | None = Field(None, min_length=16)
    allowed_origins: tuple[str, ...] = ()

    def token_file(self) -> Path:
        """Where the daemon writes the token and ``ksi-host send --websocket`` reads it."""
        return KsiPaths.from_env().run_dir / TOKEN_FILE_NAME


def require_websockets(feature: str, where: str) -> None:
    """Raise :class:`MissingExtra` naming the fix when ``websockets`` is not installed."""
    try:
        importlib.import_module("websockets")
    except ImportError:
        raise MissingExtra(
            feature=feature, module="websockets", install=INSTALL, where=where
        ) from None


def write_token(path: Path, token: str | None) -> str:
    """Write ``token`` (or a fresh random one) to ``path``, mode 0600 from the start."""
    value = token or secrets.token_urlsafe(32)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, value.encode() + b"\n")
    finally:
        os.close(fd)
    return value


def read_token(path: Path) -> str | None:
    """The token a running daemon wrote, or None when there is no such file."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def client_token(option: str | None, section: Mapping[str, Any] | None) -> str:
    """The token ``send --websocket`` presents: ``--token``, else the config's, else the file."""
    if option:
        return option
    try:
        config = WebSocketConfig.model_validate(dict(section or {}))
    except ValidationError as exc:
        raise ConfigError(
            what=f"invalid [websocket] section: {exc.errors()[0]['msg']}",
            where="[websocket] section of the config",
            hint="allowed keys: " + ", ".join(WebSocketConfig.model_fields),
        ) from None
    token_file = config.token_file()
    token = config.token or read_token(token_file)
    if token is None:
        raise ConfigError(
            what="no WebSocket token to present",
            where=f"{token_file} does not exist, and the config has no [websocket] token",
            hint="a daemon with [websocket] enabled = true writes it there at start; run "
            "send as the same user with the same KSI_HOME, or pass --token",
            file=token_file,
            keys=["websocket.token"],
        )
    return token


def token_matches(presented: str, token: str) -> bool:
    """Compare in constant time, so the token cannot be guessed a character at a time."""
    return hmac.compare_digest(presented.encode(), token.encode())


def send_websocket(
    url: str,
    token: str | None,
    section: Mapping[str, Any] | None,
    event: str,
    data: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """``ksi-host send --websocket``: says which ``pip install`` is missing before anything."""
    require_websockets("ksi-host send --websocket", where="--websocket")
    from ksi_host._websocket.client import request_websocket  # needs the extra

    return request_websocket(url, client_token(token, section), event, data, timeout)
