"""A dependency parsed on the short path is exactly the requirement packaging's parser makes."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement, Requirement

from ksi_host._requirements import WrittenRequirement, parsed

_spaces = st.sampled_from(("", " ", "  ", "\t"))
_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,6}", fullmatch=True)
_operators = st.sampled_from(("~=", "==", "!=", "<=", ">=", "<", ">", "===", "=", "=>", ""))
_versions = st.from_regex(r"[0-9A-Za-z.*+!_-]{0,8}", fullmatch=True)
_tails = st.sampled_from(("", ",", "[extra]", " ; python_version > '3'", " @ https://x.invalid/a"))


@st.composite
def _requirement_texts(draw: st.DrawFn) -> str:
    """Mostly name-and-specifier texts, right or nearly right, as authors write them."""
    pieces = [draw(_spaces), draw(_names), draw(_spaces)]
    for index in range(draw(st.integers(0, 3))):
        if index:
            pieces += [draw(_spaces), ",", draw(_spaces)]
        pieces += [draw(_operators), draw(_spaces), draw(_versions)]
    pieces += [draw(_tails), draw(_spaces)]
    return "".join(pieces)


def _fields(requirement: Requirement) -> tuple[object, ...]:
    return (
        str(requirement),
        requirement.name,
        requirement.url,
        requirement.extras,
        str(requirement.specifier),
        requirement.specifier,
        requirement.marker,
    )


@given(st.one_of(_requirement_texts(), st.text(max_size=20)))
@example("database >= 1.2, <2")
@example("a>=1.0.*")
@example("foo-")
@example("foo >= 1 ; python_version > '3'")
def test_the_short_path_makes_what_packaging_makes(text: str) -> None:
    try:
        expected = Requirement(text)
    except InvalidRequirement as exc:
        error = str(exc)
    else:
        error = None
    if error is not None:
        with pytest.raises(InvalidRequirement) as raised:
            WrittenRequirement(text)
        assert str(raised.value) == error
        return
    found = WrittenRequirement(text)
    assert _fields(found) == _fields(expected)
    assert found == expected
    assert found.written == text.partition(";")[0].strip()


def test_a_spelling_is_parsed_once() -> None:
    assert parsed("shared-dep >= 1") is parsed("shared-dep >= 1")
