"""The plugins that ship with ksi-host; discovered like any other plugin, at lowest precedence.

``PLUGIN_MODULES`` declares them, in the order discovery offers them, so that no plan parses
this package to find them. tests/test_discover.py walks the package with discovery's own rule
(a module that binds ``plugin`` at top level) and fails when the two disagree.
"""

from typing import Final

__all__ = ["PLUGIN_MODULES"]

PLUGIN_MODULES: Final = (
    "ksi_plugins_builtin.health",
    "ksi_plugins_builtin.history",
    "ksi_plugins_builtin.metrics",
    "ksi_plugins_builtin.nats_bridge",
    "ksi_plugins_builtin.plugins",
    "ksi_plugins_builtin.state",
    "ksi_plugins_builtin.transport.unix_socket",
    "ksi_plugins_builtin.transport.websocket",
)
