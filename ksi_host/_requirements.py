"""Dependency strings parsed once per spelling, each remembering how its author wrote it.

Validating ``PluginMetadata(dependencies=...)`` parses every dependency, and so does the
resolver; packaging's parser is the costliest step of planning per dependency, so both
share one parse. Messages quote a requirement as written (``"database >= 1.2"``), not as
packaging normalises it, so the parse keeps the text too.

>>> parsed("database >= 1.2 ; python_version > '3'").written
'database >= 1.2'
"""

from __future__ import annotations

from typing import Final

from packaging.requirements import Requirement

__all__ = ["WrittenRequirement", "parsed"]

_PARSED: Final[dict[str, WrittenRequirement]] = {}
_MAX_PARSED: Final = 4096


class WrittenRequirement(Requirement):
    """A requirement that remembers how it was written (its marker left out)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.written: Final = text.partition(";")[0].strip()


def parsed(text: str) -> WrittenRequirement:
    """``WrittenRequirement(text)``, parsed once; the objects are shared, so only read them.

    Raises :class:`packaging.requirements.InvalidRequirement` (never remembered).
    """
    requirement = _PARSED.get(text)
    if requirement is None:
        requirement = WrittenRequirement(text)
        if len(_PARSED) < _MAX_PARSED:
            _PARSED[text] = requirement
    return requirement
