"""The ``[server]`` section: where the Unix socket lives and the limits every connection is held to.

Apart from the server (:mod:`ksi_host._server`) so that ``send``, ``config``, ``doctor`` and
the transports' description read it without importing asyncio.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ksi_host._config import env_variable, error_message
from ksi_host._defaults import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_REPLY_BUFFER_BYTES,
)
from ksi_host._instance import MAX_SOCKET_PATH, default_socket_path
from ksi_host._limits import default_max_connections
from ksi_host.errors import ConfigError

__all__ = ["ServerConfig"]


class ServerConfig(BaseModel):
    """Where the socket lives and the limits every connection is held to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    socket_path: Path = Field(default_factory=default_socket_path)
    max_line_bytes: int = Field(DEFAULT_MAX_LINE_BYTES, ge=256, le=256 * 1024 * 1024)
    max_connections: int = Field(default_factory=default_max_connections, ge=1)
    max_inflight: int = Field(DEFAULT_MAX_INFLIGHT, ge=1)
    max_reply_buffer_bytes: int = Field(DEFAULT_MAX_REPLY_BUFFER_BYTES, ge=64 * 1024)
    idle_timeout: float = Field(DEFAULT_IDLE_TIMEOUT, gt=0)
    drain_timeout: float = Field(DEFAULT_DRAIN_TIMEOUT, ge=0)

    @field_validator("socket_path")
    @classmethod
    def _check_path(cls, value: Path) -> Path:
        value = value.expanduser()
        if len(os.fsencode(value.absolute())) > MAX_SOCKET_PATH:
            raise ValueError(f"a Unix socket path is at most {MAX_SOCKET_PATH} bytes")
        return value

    @classmethod
    def from_section(
        cls,
        section: Mapping[str, Any],
        *,
        where: str,
        socket_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ServerConfig:
        """The one place the socket is chosen, so ``run``, ``send`` and the transport agree.

        ``socket_path`` (``--socket``), else ``$KSI_SOCKET``, else the section's
        ``socket_path`` (the file or ``KSI_SERVER__SOCKET_PATH``), else ``ksi.sock`` in the
        run dir. A bad section is a :class:`ConfigError` naming the keys.
        """
        env = os.environ if env is None else env
        values = dict(section)
        socket_from, socket_variable = where, None
        if socket_path is not None:
            values["socket_path"], socket_from = socket_path, "--socket"
        elif env.get("KSI_SOCKET"):
            values["socket_path"], socket_from = (
                env["KSI_SOCKET"],
                "environment variable KSI_SOCKET",
            )
            socket_variable = "KSI_SOCKET"
        elif "socket_path" not in values:
            values["socket_path"] = default_socket_path(env)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or '<section>'}: {error_message(err, cls)}"
                for err in exc.errors()
            )
            wheres, variables = [], []
            for err in exc.errors():
                variable = env_variable(("server", *err["loc"]), env)
                if err["loc"] == ("socket_path",) and socket_from != where:
                    wheres.append(socket_from)
                    variable = socket_variable
                elif variable:
                    wheres.append(f"environment variable {variable}")
                else:
                    wheres.append(where)
                if variable:
                    variables.append(variable)
            raise ConfigError(
                what=f"invalid socket settings: {problems}",
                where="; ".join(dict.fromkeys(wheres)),
                hint="allowed keys: " + ", ".join(cls.model_fields),
                keys=["server." + ".".join(map(str, err["loc"])) for err in exc.errors()],
                env_variables=list(dict.fromkeys(variables)),
            ) from None
