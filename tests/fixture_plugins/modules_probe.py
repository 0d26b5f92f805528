"""``probe:modules``: which of the module ``names`` the process that runs it has imported.

Loaded like any user plugin (``ksi-host run --plugin-path`` this file): it tells a test
what a running daemon imported, e.g. that a lazy plugin was not, or no machinery it
does not use; ``probe:collector``, whether its cycle collector is on.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Probe(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name == "probe:modules":
            return {"loaded": [name for name in data["names"] if name in sys.modules]}
        if event_name == "probe:collector":
            return {"enabled": gc.isenabled()}
        return None


plugin = Probe(
    PluginMetadata(name="probe"), PluginCapabilities(commands=["probe:modules", "probe:collector"])
)
