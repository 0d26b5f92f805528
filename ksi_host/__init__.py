"""ksi-host: discover, resolve, start and route events to KSI plugins."""

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
