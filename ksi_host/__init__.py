"""ksi-host: discover, resolve, start and route events to KSI plugins."""

from ksi_host.errors import (
    ConfigError,
    InvalidEventName,
    InvalidPluginMetadata,
    KsiError,
    PluginRegistrationError,
    TransportNotAttached,
)
from ksi_host.plugin_base import BasePlugin, TransportPlugin, hookimpl
from ksi_host.plugin_manager import PluginManager
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

__version__ = "0.1.0"

__all__ = [
    "BasePlugin",
    "ConfigError",
    "InvalidEventName",
    "InvalidPluginMetadata",
    "KsiError",
    "PluginCapabilities",
    "PluginManager",
    "PluginMetadata",
    "PluginRegistrationError",
    "TransportNotAttached",
    "TransportPlugin",
    "__version__",
    "hookimpl",
]
