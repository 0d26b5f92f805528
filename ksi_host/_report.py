"""Progress callbacks for the plugin pipeline that do nothing unless someone listens.

Like resolvelib's reporters: each stage tells a :class:`Reporter` what it found,
so ``doctor`` or a verbose CLI can follow along without the stages knowing them.
"""

from __future__ import annotations

from typing import Protocol

from ksi_host._plan import Candidate, Exclusion, PluginSpec

__all__ = ["NullReporter", "Reporter"]


class Reporter(Protocol):
    """What the discover, describe and resolve stages tell whoever listens."""

    def found(self, candidate: Candidate) -> None:
        """A source offered ``candidate`` (nothing imported yet)."""

    def importing(self, candidate: Candidate) -> None:
        """``candidate``'s code is about to run (its import)."""

    def described(self, spec: PluginSpec) -> None:
        """A candidate imported and its metadata validated."""

    def excluded(self, exclusion: Exclusion) -> None:
        """A plugin will not load, with the reason."""


class NullReporter:
    """The default reporter: listens to nothing."""

    def found(self, candidate: Candidate) -> None:
        """Ignore."""

    def importing(self, candidate: Candidate) -> None:
        """Ignore."""

    def described(self, spec: PluginSpec) -> None:
        """Ignore."""

    def excluded(self, exclusion: Exclusion) -> None:
        """Ignore."""
