"""What a plugin gets from the host that runs it: a :class:`PluginContext`.

``ksi_plugin_context(context)`` and every ``ksi_handle_event(..., context)`` of one
plugin receive the same context. It is typed (``context.settings``, ``context.emit``,
...) and is also a read-only mapping over the same fields, so the guide's
``context.get("config", {})`` and ``context.get("event_bus")`` keep working:

>>> context = PluginContext(plugin="weather", config={"weather": {"city": "Oslo"}})
>>> context.get("config", {}).get("weather", {}).get("city")
'Oslo'
>>> context.settings is None, context.logger.name
(True, 'ksi_host.plugins.weather')
>>> context.config["weather"]["city"] = "Bergen"
Traceback (most recent call last):
TypeError: 'mappingproxy' object does not support item assignment
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, Generic, final

from typing_extensions import TypeVar

from ksi_host._bus import EventBus
from ksi_host.replies import ErrorCode, error_reply
from ksi_host.status import PluginStatus

__all__ = ["LOGGER_PREFIX", "HostView", "PluginContext", "freeze"]

LOGGER_PREFIX: Final = "ksi_host.plugins"
"""Each plugin's ``context.logger`` is ``ksi_host.plugins.<plugin name>``."""

SettingsT = TypeVar("SettingsT", default=Any)


def freeze(value: Any) -> Any:
    """A read-only deep view: mappings become ``MappingProxyType``, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


async def _no_metrics() -> dict[str, Any]:
    return {}


async def _refuse(
    event_name: str, data: dict[str, Any], context: Mapping[str, Any] | None = None
) -> Any:
    return error_reply(
        ErrorCode.UNAVAILABLE,
        f"{event_name} was emitted by a plugin with no host around it; run the plugin "
        "under ksi-host run, a Host or ksi_host.testing.PluginHarness",
    )


@final
class HostView:
    """The part of the host a plugin may look at: every plugin's status, and metrics.

    Read-only and narrow on purpose: a plugin cannot start, stop or reconfigure
    the host through it. ``ksi_plugins_builtin``'s ``plugin:list`` and
    ``system:metrics`` are built on exactly this.
    """

    __slots__ = ("_metrics", "_owner", "_plugin_list", "_status")

    def __init__(
        self,
        status: Callable[[], tuple[PluginStatus, ...]] = tuple,
        metrics: Callable[[], Awaitable[dict[str, Any]]] = _no_metrics,
        plugin_list: Callable[[], dict[str, Any]] = dict,
        *,
        owner: object = None,
    ) -> None:
        self._status: Final = status
        self._metrics: Final = metrics
        self._plugin_list: Final = plugin_list
        self._owner: Final = owner  # the host itself, for built-ins only (ksi_host._for_builtins)

    def status(self) -> tuple[PluginStatus, ...]:
        """Every plugin the host knows, in load order, then those it left out (with why)."""
        return self._status()

    def plugin_list(self) -> dict[str, Any]:
        """Every plugin's verdict as JSON data, in the shape ``ksi-host plugins --json`` uses."""
        return self._plugin_list()

    async def metrics(self) -> dict[str, Any]:
        """Every plugin's ``ksi_metrics_collected``, plus the host's own under ``"ksi_host"``."""
        return await self._metrics()

    def __repr__(self) -> str:
        return f"<HostView of {len(self.status())} plugins>"


@final
class PluginContext(Mapping[str, Any], Generic[SettingsT]):
    """The host, as one plugin sees it. Read-only; a mapping over the same fields.

    - ``plugin``: the plugin's name;
    - ``config``: the whole host configuration, read-only (``config["my_plugin"]`` is
      the plugin's own section, as the guide reads it);
    - ``settings``: that section as an instance of the plugin's ``config_model``,
      validated before ``ksi_plugin_context`` ran, or ``None`` without a model
      (``PluginContext[MySettings]`` types it);
    - ``emit``: ``await context.emit(event_name, data)`` sends an event through the
      host's pipeline and returns its answer;
    - ``event_bus``: the host's :class:`~ksi_host.EventBus` (subscribe, wait_for, history);
    - ``logger``: a logger named ``ksi_host.plugins.<plugin>``;
    - ``host``: a :class:`HostView` (status and metrics), not the host itself.

    As a mapping it has these keys, plus whatever the caller of an event adds
    (the host's own keys win).
    """

    __slots__ = ("_items", "config", "emit", "event_bus", "host", "logger", "plugin", "settings")

    def __init__(
        self,
        *,
        plugin: str,
        config: Mapping[str, Any] | None = None,
        settings: Any = None,
        event_bus: EventBus | None = None,
        host: HostView | None = None,
    ) -> None:
        bus = event_bus if event_bus is not None else EventBus(_refuse)
        self.plugin: Final = plugin
        self.config: Final[Mapping[str, Any]] = freeze(config or {})
        self.settings: Final[SettingsT] = settings
        self.event_bus: Final = bus
        self.emit: Final = bus.emit
        self.logger: Final = logging.getLogger(f"{LOGGER_PREFIX}.{plugin}")
        self.host: Final = host if host is not None else HostView()
        self._items: dict[str, Any] = {
            "plugin": plugin,
            "config": self.config,
            "settings": settings,
            "event_bus": bus,
            "emit": bus.emit,
            "logger": self.logger,
            "host": self.host,
        }

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"PluginContext(plugin={self.plugin!r}, keys={sorted(self._items)})"

    def extend(self, extra: Mapping[str, Any]) -> PluginContext[SettingsT]:
        """This context plus a caller's entries (e.g. the connection); the host's entries win."""
        extended = copy.copy(self)
        extended._items = {**extra, **self._items}
        return extended
