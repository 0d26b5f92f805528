""" "Did you mean ...?" for a name that is close to one we know (difflib, as pip and click do).

>>> did_you_mean("sytem:health", ["system:health", "state:get"])
"did you mean 'system:health'?"
>>> did_you_mean("zzz", ["system:health"]) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["close_matches", "did_you_mean"]

_CUTOFF: Final = 0.6
_SHOWN: Final = 3
_MARGIN: Final = 0.1


def close_matches(word: str, known: Iterable[str]) -> list[str]:
    """The known names closest to ``word``: at most three, none far behind the best one.

    Best first, ties alphabetically.
    """
    import difflib  # only when a name is wrong: most commands never need it

    matcher = difflib.SequenceMatcher(b=word)
    scored = []
    for name in set(known):
        matcher.set_seq1(name)
        if matcher.real_quick_ratio() >= _CUTOFF and matcher.quick_ratio() >= _CUTOFF:
            ratio = matcher.ratio()
            if ratio >= _CUTOFF:
                scored.append((-ratio, name))
    scored.sort()
    return [name for score, name in scored[:_SHOWN] if score <= scored[0][0] + _MARGIN]


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """``did you mean 'a'?`` (or ``'a' or 'b'``), or None when nothing is close."""
    matches = close_matches(word, known)
    if not matches:
        return None
    return "did you mean " + " or ".join(repr(match) for match in matches) + "?"
