"""The NATS bridge: hosts on several machines share events through a NATS server.

Off unless the config has a ``[nats]`` section (``docs/NATS.md``); then it needs the
``nats`` extra (``pip install "ksi-host[nats]"``), and fails with that command, the host
running on, when it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ksi_host import BasePlugin, hookimpl
from ksi_host._for_builtins import host_of
from ksi_host.errors import HostRequired
from ksi_plugins_builtin._metadata import builtin_metadata
from ksi_plugins_builtin.nats_bridge._settings import (
    EXTRA,
    NatsSettings,
    connect_options,
    nats_client,
)
from ksi_plugins_builtin.nats_bridge._wire import INBOUND

if TYPE_CHECKING:
    from ksi_plugins_builtin.nats_bridge._bridge import Bridge

__all__ = [
    "EXTRA",
    "INBOUND",
    "SECTION",
    "NatsBridgePlugin",
    "NatsSettings",
    "connect_options",
    "nats_client",
    "plugin",
]

SECTION = "nats"


class NatsBridgePlugin(BasePlugin):
    """Exports, imports, publishes and subscribes namespaces as ``[nats]`` says."""

    config_model = NatsSettings

    def __init__(self) -> None:
        super().__init__(
            metadata=builtin_metadata(
                SECTION, "NATS bridge: share events with other hosts (off without [nats])"
            ),
        )
        self._bridge: Bridge | None = None

    @hookimpl
    def ksi_plugin_context(self, context: Mapping[str, Any]) -> None:
        config = context.get("config")
        section = config.get(SECTION) if isinstance(config, Mapping) else None
        if section is None:
            self._bridge = None
            return
        host = host_of(context)
        if host is None:
            raise HostRequired(plugin=self.name, needs="the host's dispatch and emit chain")
        from ksi_plugins_builtin.nats_bridge._bridge import Bridge  # the daemon's machinery

        self._bridge = Bridge(NatsSettings.model_validate(section), host, plugin=self.name)

    @hookimpl
    async def ksi_startup(self) -> dict[str, Any]:
        if self._bridge is None:
            return {"status": "plugin_started", "nats": "off: the config has no [nats] section"}
        await self._bridge.start()
        return {"status": "plugin_started", "nats": self._bridge.metrics()}

    @hookimpl
    async def ksi_shutdown(self) -> None:
        if self._bridge is not None:
            await self._bridge.stop()
            self._bridge = None

    @hookimpl
    def ksi_metrics_collected(self, metrics: dict[str, Any]) -> dict[str, Any]:
        if self._bridge is not None:
            metrics[SECTION] = self._bridge.metrics()
        return metrics


plugin = NatsBridgePlugin()
