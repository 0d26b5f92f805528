"""How a yes/no environment variable is read: one rule for every ``KSI_`` switch.

``0``, ``false``, ``no`` and ``off`` (any case, spaces around ignored) say no; so does
a variable that is unset or empty. Anything else says yes. Only the standard library is
imported: the entry point reads a switch before it imports anything heavier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["switched_off", "switched_on"]

_NO: Final = frozenset({"0", "false", "no", "off"})


def switched_on(env: Mapping[str, str], name: str) -> bool:
    """Whether ``name`` is set to a yes (``KSI_DISABLE_PLUGIN_AUTOLOAD=1``)."""
    value = env.get(name, "").strip().lower()
    return bool(value) and value not in _NO


def switched_off(env: Mapping[str, str], name: str) -> bool:
    """Whether ``name`` is set to a no (``KSI_ANSWER_CACHE=0``): unset is not off."""
    return env.get(name, "").strip().lower() in _NO
