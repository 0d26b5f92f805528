"""The smallest host the daemon's tests need, until the real Host (issue 5) is wired in.

It registers real plugins on a real ``PluginManager``, gives them a context, starts
and stops them, and dispatches by calling ``ksi_handle_event``. Run as a script it
is a daemon: ``python tests/minihost.py SOCKET [STATE_DB]``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from ksi_host._daemon import run_daemon
from ksi_host._instance import AlreadyRunning
from ksi_host._protocol import error_data
from ksi_host._server import ServerConfig
from ksi_host.plugin_base import BasePlugin, TransportPlugin, hookimpl
from ksi_host.plugin_manager import PluginManager
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from ksi_plugins_builtin import health, history, metrics, plugins, state
from ksi_plugins_builtin.transport import unix_socket


async def _settle(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class TestEventsPlugin(BasePlugin):
    """Events the daemon tests need: a slow one, a raising one, an echo."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(name="test_events", version="1.0"),
            capabilities=PluginCapabilities(event_namespaces=["test"]),
        )

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name == "test:echo":
            return {"echo": data}
        if event_name == "test:sleep":
            return self._sleep(float(data.get("seconds", 0.1)), data)
        if event_name == "test:raise":
            raise RuntimeError("boom")
        return None

    async def _sleep(self, seconds: float, data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"slept": seconds, "echo": data}


class MiniHost:
    """Real plugins on a real PluginManager; broadcast dispatch, first answer wins."""

    def __init__(self, plugin_list: list[BasePlugin], config: dict[str, Any] | None = None):
        self.plugins = plugin_list
        self.config = config or {}
        self.manager = PluginManager()
        for plugin in plugin_list:
            self.manager.register(plugin)
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)
        self.events = 0

    async def start(self) -> None:
        context = {"host": self, "event_bus": self, "config": self.config, "emit": self.dispatch}
        for plugin in self.plugins:
            if isinstance(plugin, TransportPlugin):
                plugin.attach(self.dispatch)
            hook = getattr(plugin, "ksi_plugin_context", None)
            if hook is not None:
                await _settle(hook(context))
        for plugin in self.plugins:
            hook = getattr(plugin, "ksi_startup", None)
            if hook is not None:
                await _settle(hook())

    async def stop(self) -> None:
        for plugin in reversed(self.plugins):
            hook = getattr(plugin, "ksi_shutdown", None)
            if hook is not None:
                await _settle(hook())

    async def dispatch(self, event_name: str, data: dict[str, Any], context: Any = None) -> Any:
        self.events += 1
        self.history.append({"timestamp": time.time(), "name": event_name, "data": data})
        results = self.manager.pm.hook.ksi_handle_event(
            event_name=event_name, data=data, context=context
        )
        for result in results:
            answer = await _settle(result)
            if answer is not None:
                return answer
        return error_data("NO_HANDLER", f"no plugin handles {event_name!r}")

    def status(self) -> dict[str, Any]:
        return {
            "plugins": [
                {
                    "name": p.metadata.name,
                    "version": p.metadata.version,
                    "source": "test",
                    "status": "running",
                    "reason": None,
                }
                for p in self.plugins
            ]
        }

    async def metrics(self) -> dict[str, Any]:
        collected: dict[str, Any] = {"host": {"events": self.events}}
        for result in self.manager.pm.hook.ksi_metrics_collected(metrics=collected):
            await _settle(result)
        return collected

    def get_event_history(
        self, namespace: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        events = [
            e for e in self.history if namespace is None or e["name"].startswith(namespace + ":")
        ]
        return events[-limit:] if limit else events


def builtin_plugins() -> list[BasePlugin]:
    """Fresh instances of every built-in, transport last (it starts serving once all are up)."""
    return [
        health.HealthPlugin(),
        state.StatePlugin(),
        history.HistoryPlugin(),
        plugins.PluginsPlugin(),
        metrics.MetricsPlugin(),
        TestEventsPlugin(),
        unix_socket.UnixSocketTransport(),
    ]


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    socket_path = Path(argv[0])
    config: dict[str, Any] = {"state": {"path": argv[1]}} if len(argv) > 1 else {}
    host = MiniHost(builtin_plugins(), config)
    drain = float(argv[2]) if len(argv) > 2 else 5.0
    server_config = ServerConfig(socket_path=socket_path, drain_timeout=drain)
    try:
        return asyncio.run(run_daemon(host.start, host.stop, server_config))
    except AlreadyRunning as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
