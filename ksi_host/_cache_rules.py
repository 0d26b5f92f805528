"""What produced a cache's answers: a change to any of it empties the cache.

A kept answer (a validated manifest, a described plugin) is only as good as the code
that produced it: ksi-host's version, the versions of pydantic and packaging, and the
modules of ksi-host that hold the rules (an edited checkout counts, by their stats).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

import packaging
import pydantic

from ksi_host import __version__
from ksi_host._stamps import source_stamps

__all__ = ["cache_rules"]


def cache_rules(cache_format: int, modules: Iterable[ModuleType]) -> str:
    """One string naming the cache's format and everything above; compare it, never parse it."""
    stamps = [f"{cache_format}", __version__, pydantic.VERSION, packaging.__version__]
    return "|".join([*stamps, *source_stamps(str(module.__file__) for module in modules)])
