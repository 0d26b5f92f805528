"""The namespace:action grammar, by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ksi_host import InvalidEventName
from ksi_host.events import check_event_name, normalise_namespace, split_event_name
from tests.strategies import segments


@given(segments, segments)
def test_every_grammatical_name_splits_back_into_its_parts(namespace, action):
    assert split_event_name(f"{namespace}:{action}") == (namespace, action)
    assert normalise_namespace(f"/{namespace}") == namespace


@given(st.text(max_size=40))
def test_any_text_is_either_a_valid_name_or_a_clear_error(text):
    try:
        parts: tuple[str, str] | None = split_event_name(text)
    except InvalidEventName as exc:
        parts, error = None, exc
    if parts is None:
        assert error.name == text
        assert "namespace:action" in str(error)
    else:
        assert ":".join(parts) == text


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("health", "it has no ':' between namespace and action"),
        (":health", "the namespace is empty"),
        ("system:", "the action is empty"),
        ("System:health", "the namespace 'System' must start with a lowercase letter"),
        ("system:9lives", "the action '9lives' must start with a lowercase letter"),
        ("a:b:c", "it has more than one ':'"),
        ("a" * 65 + ":b", "the namespace is longer than 64 characters"),
        (42, "it is a int, not a string"),
    ],
)
def test_invalid_names_say_why(name, reason):
    with pytest.raises(InvalidEventName, match="invalid event name") as info:
        check_event_name(name)
    assert reason in info.value.what
