"""Dependency strings parsed once per spelling, each remembering how its author wrote it.

Validating ``PluginMetadata(dependencies=...)`` parses every dependency, and so does the
resolver; packaging's parser is the costliest step of planning per dependency, so both
share one parse. Most dependencies are a name and version specifiers (``"database >= 1.2"``);
those are split with one regular expression and only their specifiers go through
packaging (once per spelling, and shared), which makes the same requirement as its
full parser. Messages quote a
requirement as written (``"database >= 1.2"``), not as packaging normalises it, so the
parse keeps the text too.

>>> parsed("database >= 1.2 ; python_version > '3'").written
'database >= 1.2'
"""

from __future__ import annotations

import functools
import re
from typing import Final

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

__all__ = ["WrittenRequirement", "parsed"]

_MAX_PARSED: Final = 4096
_SPECIFIER: Final = r"(?:~=|==|!=|<=|>=|<|>)[ \t]*[A-Za-z0-9.*+!_-]+"
_SIMPLE: Final = re.compile(
    rf"[ \t]*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)[ \t]*"
    rf"({_SPECIFIER}(?:[ \t]*,[ \t]*{_SPECIFIER})*)?[ \t]*"
)
"""A name and version specifiers, nothing else (no extras, URL, marker or parentheses)."""


class WrittenRequirement(Requirement):
    """A requirement that remembers how it was written (its marker left out)."""

    def __init__(self, text: str) -> None:
        simple = _SIMPLE.fullmatch(text)
        try:
            specifier = _specifier(simple[2] or "") if simple is not None else None
        except InvalidSpecifier:
            specifier = None
        if simple is None or specifier is None:
            super().__init__(text)  # anything else, and every error, as packaging has it
        else:
            self.name = simple[1]
            self.url = None
            self.extras = set()
            self.specifier = specifier
            self.marker = None
        self.written: Final = text.partition(";")[0].strip()


@functools.lru_cache(maxsize=_MAX_PARSED)
def _specifier(text: str) -> SpecifierSet:
    """``SpecifierSet(text)``, made once per spelling (``>=1.0`` is common), so only read it."""
    return SpecifierSet(text)


@functools.lru_cache(maxsize=_MAX_PARSED)
def parsed(text: str) -> WrittenRequirement:
    """``WrittenRequirement(text)``, parsed once; the objects are shared, so only read them.

    Raises :class:`packaging.requirements.InvalidRequirement` (never remembered).
    """
    return WrittenRequirement(text)
