"""Every built-in is versioned with ksi-host itself: its metadata is built here, once."""

from __future__ import annotations

from ksi_host import PluginMetadata, __version__

__all__ = ["builtin_metadata"]


def builtin_metadata(name: str, description: str) -> PluginMetadata:
    """A built-in's metadata: its name and one line on what it answers, at ksi-host's version."""
    return PluginMetadata(name=name, version=__version__, description=description)
