"""The data this plugin accepts, checked at the boundary before any handler sees it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EchoRequest", "PingRequest", "Settings"]


class _Strict(BaseModel):
    """Unknown fields are an error, so a typo in a request is reported, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PingRequest(_Strict):
    """``<namespace>:ping`` takes no data."""


class EchoRequest(_Strict):
    """``<namespace>:echo`` sends ``message`` back ``times`` times."""

    message: str = Field(min_length=1, max_length=1000)
    times: int = Field(default=1, ge=1, le=10)


class Settings(_Strict):
    """This plugin's section of the host config, validated by the host: ``context.settings``."""

    reply: str = "pong"
