"""The one rule for comparing plugin and service names, without the plugin contract's weight.

:func:`canonical_name` is public as ``ksi_host.plugin_types.canonical_name``; it lives
here so the config (which every command reads) can use it without importing the
metadata models and packaging's requirement parser.
"""

from __future__ import annotations

from packaging.utils import InvalidName, canonicalize_name

__all__ = ["canonical_name"]


def canonical_name(name: str) -> str:
    """Normalise a plugin or service name the way PyPI normalises project names.

    >>> canonical_name("My_Plugin.Two")
    'my-plugin-two'
    """
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise ValueError(
            "a name must be ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        ) from None
