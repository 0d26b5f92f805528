"""Spare pydantic its scan for plugins when the kept entry-point scan proves there are none.

The first time a pydantic model is built, pydantic looks for its own plugins (entry-point
group ``pydantic``) by reading every installed distribution's ``entry_points.txt``: with
a thousand plugins installed, as much reading as ksi-host's own scan (~80 ms CPU). The
scan cache (:mod:`ksi_host._scan_cache`) records whether any distribution declares one.
Only while that record is valid for this ``sys.path`` and says none is pydantic handed
the very answer its own scan would reach (no plugins, kept for the process); otherwise
nothing changes and pydantic scans as ever. No environment variable is set, so no child
process inherits the decision. See docs/OPERATING.md.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from ksi_host._scan_cache import ScanCache

__all__ = ["spare_pydantic_scan"]


def spare_pydantic_scan(env: Mapping[str, str] | None = None) -> bool:
    """Tell pydantic it has no plugins if a valid kept scan proves it; True when told.

    Call it before the process builds its first model: once pydantic has scanned,
    there is nothing left to spare. Nothing of pydantic is imported unless it is told, and
    a pydantic without that private table is left to scan as ever.
    """
    loaded = sys.modules.get("pydantic.plugin._loader")
    if getattr(loaded, "_plugins", None) is not None:
        return False
    if ScanCache.early(env).pydantic_plugins() is not False:
        return False
    try:
        from pydantic.plugin import _loader
    except ImportError:
        return False
    # A private name: should a pydantic release drop or rename it, pydantic simply scans.
    if not hasattr(_loader, "_plugins") or _loader._plugins is not None:
        return False
    _loader._plugins = {}
    return True
