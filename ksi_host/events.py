"""The event-name grammar, in one place for metadata, dispatch and the wire.

An event name is ``namespace:action``::

    event     = namespace ":" action
    namespace = segment
    action    = segment
    segment   = [a-z] [a-z0-9_-]*        (at most 64 characters each)

A namespace may be written ``/system`` as the guide does; it means ``system``.

>>> split_event_name("system:health")
('system', 'health')
>>> normalise_namespace("/system")
'system'
"""

from __future__ import annotations

import re
from typing import Final

from ksi_host.errors import InvalidEventName

__all__ = [
    "EVENT_NAME_EXAMPLE",
    "EVENT_NAME_PATTERN",
    "MAX_SEGMENT",
    "check_event_name",
    "normalise_namespace",
    "split_event_name",
]

MAX_SEGMENT: Final = 64
EVENT_NAME_EXAMPLE: Final = "system:health"
_SEGMENT: Final = rf"[a-z][a-z0-9_-]{{0,{MAX_SEGMENT - 1}}}"
_SEGMENT_RE: Final = re.compile(_SEGMENT)
_EVENT_RE: Final = re.compile(rf"({_SEGMENT}):({_SEGMENT})")
EVENT_NAME_PATTERN: Final = rf"^{_SEGMENT}:{_SEGMENT}$"
"""The grammar as one anchored regex, for a validator that takes a pattern (the wire's)."""


def _reason(name: str) -> str:
    if ":" not in name:
        return "it has no ':' between namespace and action"
    if name.count(":") > 1:
        return "it has more than one ':'"
    namespace, _, action = name.partition(":")
    for label, part in (("namespace", namespace), ("action", action)):
        if not part:
            return f"the {label} is empty"
        if len(part) > MAX_SEGMENT:
            return f"the {label} is longer than {MAX_SEGMENT} characters"
        if not _SEGMENT_RE.fullmatch(part):
            return (
                f"the {label} {part!r} must start with a lowercase letter and contain only "
                "lowercase letters, digits, '_' and '-'"
            )
    return "it is not 'namespace:action'"


def split_event_name(name: object) -> tuple[str, str]:
    """Return ``(namespace, action)`` or raise :class:`InvalidEventName` saying why not."""
    if not isinstance(name, str):
        raise InvalidEventName(name, reason=f"it is a {type(name).__name__}, not a string")
    match = _EVENT_RE.fullmatch(name)
    if match is None:
        raise InvalidEventName(name, reason=_reason(name))
    return match.group(1), match.group(2)


def check_event_name(name: object) -> str:
    """Return ``name`` as a string if it follows the grammar."""
    namespace, action = split_event_name(name)
    return f"{namespace}:{action}"


def normalise_namespace(namespace: object) -> str:
    """Accept ``system`` or the guide's ``/system``; return ``system``."""
    if not isinstance(namespace, str):
        raise InvalidEventName(namespace, reason="a namespace must be a string")
    bare = namespace[1:] if namespace.startswith("/") else namespace
    if len(bare) > MAX_SEGMENT or not _SEGMENT_RE.fullmatch(bare):
        raise InvalidEventName(
            namespace,
            reason="a namespace must start with a lowercase letter and contain only "
            f"lowercase letters, digits, '_' and '-' (at most {MAX_SEGMENT})",
        )
    return bare
