"""The base classes plugin authors subclass, and the ``hookimpl`` marker they decorate with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final

import pluggy
from pydantic import BaseModel

from ksi_host.context import PluginContext
from ksi_host.errors import PluginRegistrationError, TransportNotAttached
from ksi_host.hookspecs import PROJECT_NAME, HookResult, MaybeAwaitable
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__all__ = ["BasePlugin", "Emitter", "TransportPlugin", "hookimpl"]

hookimpl: Final = pluggy.HookimplMarker(PROJECT_NAME)

Emitter = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""What a host gives a transport to hand events in: ``await emit(event_name, data)``."""


class BasePlugin:
    """A KSI plugin: metadata, capabilities, and the ``@hookimpl`` methods of a subclass."""

    config_model: ClassVar[type[BaseModel] | None] = None
    """A pydantic model the plugin's config section must validate against, if any."""

    def __init__(
        self,
        metadata: PluginMetadata,
        capabilities: PluginCapabilities | None = None,
    ) -> None:
        cls = type(self).__name__
        if not isinstance(metadata, PluginMetadata):
            raise PluginRegistrationError(
                plugin=self,
                name=cls,
                what=f"{cls}: metadata must be a PluginMetadata, not {type(metadata).__name__}",
                hint="pass metadata=PluginMetadata(name='my_plugin', ...)",
            )
        if capabilities is not None and not isinstance(capabilities, PluginCapabilities):
            raise PluginRegistrationError(
                plugin=self,
                name=cls,
                what=f"{cls}: capabilities must be a PluginCapabilities or None, "
                f"not {type(capabilities).__name__}",
                hint="pass capabilities=PluginCapabilities(commands=[...], ...), or leave it out",
            )
        self.metadata: Final = metadata
        self.capabilities: Final = capabilities or PluginCapabilities()

    @property
    def name(self) -> str:
        """The name the plugin is registered and reported under."""
        return self.metadata.name

    def __repr__(self) -> str:
        version = self.metadata.version or "unversioned"
        return f"<{type(self).__name__} {self.metadata.name} {version}>"

    # The hooks as ksi_host.hookspecs types them, so mypy checks a subclass's @hookimpl
    # methods against them. Without @hookimpl these are not implementations: pluggy
    # registers only what a subclass marks.

    def ksi_startup(self) -> MaybeAwaitable:
        """See :func:`ksi_host.hookspecs.ksi_startup`."""
        return None

    def ksi_shutdown(self) -> object:
        """See :func:`ksi_host.hookspecs.ksi_shutdown`."""
        return None

    def ksi_plugin_context(self, context: PluginContext[Any]) -> HookResult:
        """See :func:`ksi_host.hookspecs.ksi_plugin_context`."""
        return None

    def ksi_handle_event(
        self, event_name: str, data: dict[str, Any], context: PluginContext[Any]
    ) -> MaybeAwaitable:
        """See :func:`ksi_host.hookspecs.ksi_handle_event`."""
        return None

    def ksi_filter_event(self, event_name: str, data: dict[str, Any]) -> MaybeAwaitable:
        """See :func:`ksi_host.hookspecs.ksi_filter_event`."""
        return data

    def ksi_validate_event(self, event_name: str, data: dict[str, Any]) -> HookResult:
        """See :func:`ksi_host.hookspecs.ksi_validate_event`."""
        return None

    def ksi_metrics_collected(self, metrics: dict[str, Any]) -> MaybeAwaitable:
        """See :func:`ksi_host.hookspecs.ksi_metrics_collected`."""
        return metrics


class TransportPlugin(BasePlugin):
    """A plugin that brings events in from outside (a socket, a websocket, ...).

    The host attaches itself when it loads the plugin; until then ``emit_event``
    raises, since there is nowhere to send the event.
    """

    def __init__(
        self,
        name: str,
        transport_type: str,
        *,
        metadata: PluginMetadata | None = None,
        capabilities: PluginCapabilities | None = None,
    ) -> None:
        super().__init__(
            metadata=metadata or PluginMetadata(name=name),
            capabilities=capabilities,
        )
        self.transport_type: Final = transport_type
        self._emitter: Emitter | None = None

    def attach(self, emitter: Emitter | None) -> None:
        """Connect to (or, with ``None``, detach from) the host that routes events."""
        self._emitter = emitter

    async def emit_event(self, event_name: str, data: dict[str, Any]) -> Any:
        """Hand an event to the host and return its answer."""
        if self._emitter is None:
            raise TransportNotAttached(transport=self.name)
        return await self._emitter(event_name, data)
