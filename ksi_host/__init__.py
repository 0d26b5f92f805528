"""ksi-host: discover, resolve, start and route events to KSI plugins.

Every public name is importable from here, but its module is imported the first time
the name is used (PEP 562): ``import ksi_host`` alone costs next to nothing, so a
command pays only for what it uses (``ksi-host send`` for its config and client, not
for the plugin contract, the event bus or the plugin manager).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksi_host._lazy_names import lazy_getattr as _lazy_getattr

if TYPE_CHECKING:
    from ksi_host._bus import EventBus
    from ksi_host._paths import KsiPaths
    from ksi_host.context import HostView, PluginContext
    from ksi_host.errors import (
        ConfigError,
        InvalidEventName,
        InvalidPluginMetadata,
        KsiError,
        PluginConfigInvalid,
        PluginRegistrationError,
        TransportNotAttached,
    )
    from ksi_host.plugin_base import BasePlugin, TransportPlugin, hookimpl
    from ksi_host.plugin_manager import PluginManager
    from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
    from ksi_host.replies import ErrorCode, error_reply
    from ksi_host.status import Origin, PluginStatus, Reason, ReasonCode, SourceKind, Status

__version__ = "0.1.0"

__all__ = [
    "BasePlugin",
    "ConfigError",
    "ErrorCode",
    "EventBus",
    "HostView",
    "InvalidEventName",
    "InvalidPluginMetadata",
    "KsiError",
    "KsiPaths",
    "Origin",
    "PluginCapabilities",
    "PluginConfigInvalid",
    "PluginContext",
    "PluginManager",
    "PluginMetadata",
    "PluginRegistrationError",
    "PluginStatus",
    "Reason",
    "ReasonCode",
    "SourceKind",
    "Status",
    "TransportNotAttached",
    "TransportPlugin",
    "__version__",
    "error_reply",
    "hookimpl",
]

_HOMES: Final = {
    "EventBus": "ksi_host._bus",
    "KsiPaths": "ksi_host._paths",
    "HostView": "ksi_host.context",
    "PluginContext": "ksi_host.context",
    "ConfigError": "ksi_host.errors",
    "InvalidEventName": "ksi_host.errors",
    "InvalidPluginMetadata": "ksi_host.errors",
    "KsiError": "ksi_host.errors",
    "PluginConfigInvalid": "ksi_host.errors",
    "PluginRegistrationError": "ksi_host.errors",
    "TransportNotAttached": "ksi_host.errors",
    "BasePlugin": "ksi_host.plugin_base",
    "TransportPlugin": "ksi_host.plugin_base",
    "hookimpl": "ksi_host.plugin_base",
    "PluginManager": "ksi_host.plugin_manager",
    "PluginCapabilities": "ksi_host.plugin_types",
    "PluginMetadata": "ksi_host.plugin_types",
    "ErrorCode": "ksi_host.replies",
    "error_reply": "ksi_host.replies",
    "Origin": "ksi_host.status",
    "PluginStatus": "ksi_host.status",
    "Reason": "ksi_host.status",
    "ReasonCode": "ksi_host.status",
    "SourceKind": "ksi_host.status",
    "Status": "ksi_host.status",
}
"""The module each public name is defined in, imported on the name's first use."""


__getattr__ = _lazy_getattr(__name__, _HOMES)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
