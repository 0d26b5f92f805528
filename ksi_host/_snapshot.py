"""Copies of event data, so no plugin can change what another plugin or the history sees.

Event data is JSON-shaped: dicts, lists and atoms are copied all the way down. Any
other object inside it (a future a caller waits on, a handle) is passed on as it is:
it is the emitter's to share, and copying it would break the handover.

>>> data = {"key": "k", "tags": ["a"]}
>>> copy = snapshot(data)
>>> copy["tags"].append("b")
>>> data
{'key': 'k', 'tags': ['a']}
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["snapshot"]

_ATOMS: Final = frozenset({str, int, float, bool, type(None)})


def snapshot(value: Any) -> Any:
    """``value`` with every dict, list and tuple inside it copied; other objects shared."""
    kind = type(value)
    if kind is dict:
        return {
            key: item if type(item) in _ATOMS else snapshot(item) for key, item in value.items()
        }
    if kind in _ATOMS:
        return value
    if kind is list or isinstance(value, list):
        return [snapshot(item) for item in value]
    if kind is tuple:
        return tuple(snapshot(item) for item in value)
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    return value
