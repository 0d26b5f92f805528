"""The event hooks the dispatcher routes, and which of a plugin's it cannot run.

Apart from :mod:`ksi_host._dispatch` so that checking a plugin in every plan
(:mod:`ksi_host._vet`) does not import the dispatcher, and asyncio with it.
"""

from __future__ import annotations

from typing import Final

import pluggy

__all__ = ["DISPATCH_HOOKS", "unsupported_hooks"]

DISPATCH_HOOKS: Final = ("ksi_filter_event", "ksi_validate_event", "ksi_handle_event")


def unsupported_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Event hooks of ``plugin`` that are wrappers, which the dispatcher does not run."""
    return [
        name
        for name in DISPATCH_HOOKS
        for impl in getattr(pm.hook, name).get_hookimpls()
        if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper)
    ]
