from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime, timezone
from decimal import Decimal
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticSerializationError, to_json

from ksi_host._protocol import ProtocolFailure, Request, encode_reply, parse_request
from ksi_host.replies import ErrorCode, error_reply, jsonable


def test_a_full_request_parses():
    request = parse_request(b'{"event": "state:set", "data": {"key": "k"}, "correlation_id": 7}')
    assert request == Request(event="state:set", data={"key": "k"}, correlation_id=7)


def test_data_and_correlation_id_are_optional():
    assert parse_request(b'{"event": "system:health"}') == Request(event="system:health")


@pytest.mark.parametrize(
    ("line", "code", "fragment"),
    [
        (b"\xff\xfe{}", ErrorCode.INVALID_ENCODING, "not UTF-8"),
        (b'{"event": ', ErrorCode.INVALID_JSON, "not JSON"),
        (b"[1, 2]", ErrorCode.NOT_AN_OBJECT, "not an array"),
        (b'"system:health"', ErrorCode.NOT_AN_OBJECT, "not a string"),
        (b"null", ErrorCode.NOT_AN_OBJECT, "not null"),
        (b'{"data": {}}', ErrorCode.INVALID_REQUEST, "'event' is missing"),
        (b'{"event": 3}', ErrorCode.INVALID_REQUEST, "'event' must be a string"),
        (b'{"event": "a:b", "data": []}', ErrorCode.INVALID_REQUEST, "'data' must be"),
        (b'{"event": "a:b", "data": null}', ErrorCode.INVALID_REQUEST, "'data' must be"),
        (b'{"event": "a:b", "correlation_id": 1.5}', ErrorCode.INVALID_REQUEST, "correlation_id"),
        (b'{"event": "a:b", "correlation_id": true}', ErrorCode.INVALID_REQUEST, "correlation_id"),
        (b'{"name": "a:b"}', ErrorCode.INVALID_REQUEST, "unknown field 'name'"),
        (b'{"event": "Health"}', ErrorCode.INVALID_EVENT_NAME, "no ':'"),
        (b'{"event": "sys:"}', ErrorCode.INVALID_EVENT_NAME, "action is empty"),
    ],
)
def test_every_bad_line_gets_a_code_and_a_fix(line, code, fragment):
    failure = parse_request(line)
    assert isinstance(failure, ProtocolFailure)
    assert failure.code is code
    assert fragment in failure.message


def test_a_failure_keeps_the_correlation_id_and_event_it_could_read():
    failure = parse_request(b'{"event": "Bad", "correlation_id": "c-1"}')
    assert isinstance(failure, ProtocolFailure)
    assert (failure.event, failure.correlation_id) == ("Bad", "c-1")


def test_an_over_long_correlation_id_is_rejected_and_not_echoed():
    failure = parse_request(json.dumps({"event": "a:b", "correlation_id": "x" * 300}).encode())
    assert isinstance(failure, ProtocolFailure)
    assert failure.correlation_id is None
    assert "at most 256" in failure.message


@given(st.binary(max_size=200))
def test_no_bytes_make_the_parser_raise(line):
    assert isinstance(parse_request(line), (Request, ProtocolFailure))


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
            max_leaves=8,
        ),
        max_size=4,
    ),
    st.one_of(st.none(), st.integers(), st.text(max_size=20)),
)
def test_any_json_data_round_trips_through_a_reply(data, correlation_id):
    request = parse_request(
        json.dumps({"event": "test:echo", "data": data, "correlation_id": correlation_id}).encode()
    )
    assert isinstance(request, Request)
    line = encode_reply(request.event, request.correlation_id, request.data)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "event": "test:echo",
        "correlation_id": correlation_id,
        "data": data,
    }


_answer_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too: orjson refuses those
    | st.floats()  # NaN and infinities too
    | st.text(max_size=8)
    | st.datetimes(timezones=st.just(timezone.utc) | st.none())  # pydantic writes UTC as Z
    | st.sampled_from(
        [ErrorCode.TIMEOUT, Decimal("1.5"), b"raw", frozenset({1}), "lone \ud800 surrogate"]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4)
        | st.builds(OrderedDict, st.dictionaries(st.text(max_size=5), children, max_size=3))
        | st.builds(MappingProxyType, st.dictionaries(st.text(max_size=5), children, max_size=3))
    ),
    max_leaves=12,
)


@given(_answer_values, st.one_of(st.none(), st.integers(), st.text(max_size=20)))
def test_a_reply_is_written_byte_for_byte_as_pydantic_core_writes_it(value, correlation_id):
    """orjson writes the usual replies; whatever it writes must be pydantic-core's bytes."""
    answer = {"value": value}
    try:
        expected = (
            to_json(
                {"event": "a:b", "correlation_id": correlation_id, "data": answer},
                inf_nan_mode="null",
                fallback=lambda mapping: dict(mapping),
            )
            + b"\n"
        )
    except PydanticSerializationError:
        assert b"INTERNAL_ERROR" in encode_reply("a:b", correlation_id, answer)
    else:
        assert encode_reply("a:b", correlation_id, answer) == expected


def test_a_non_dict_answer_becomes_an_internal_error_reply():
    reply = json.loads(encode_reply("a:b", "1", ["not", "a", "dict"]))
    assert reply["data"]["error"]["code"] == "INTERNAL_ERROR"
    assert "not a dict" in reply["data"]["error"]["message"]


def test_an_answer_that_is_not_json_becomes_an_internal_error_reply():
    reply = json.loads(encode_reply("a:b", "1", {"value": object()}))
    assert reply["correlation_id"] == "1"
    assert reply["data"]["error"]["code"] == "INTERNAL_ERROR"
    assert "cannot be sent as JSON" in reply["data"]["error"]["message"]


def test_datetimes_in_answers_are_sent_as_iso_strings():
    when = datetime(2025, 6, 24, tzinfo=timezone.utc)
    reply = json.loads(encode_reply("a:b", None, {"at": when}))
    assert reply["data"] == {"at": "2025-06-24T00:00:00Z"}


def test_error_reply_is_the_guides_shape():
    assert error_reply(ErrorCode.INVALID_INPUT, "m") == {
        "status": "error",
        "error": {"code": "INVALID_INPUT", "message": "m"},
    }


def test_jsonable_flattens_host_values():
    from dataclasses import dataclass
    from pathlib import Path

    @dataclass(frozen=True)
    class Entry:
        name: str
        where: Path
        tags: tuple[str, ...]

    assert jsonable(
        {"plugins": [Entry("a", Path("/x"), ("t",))], "code": ErrorCode.INVALID_JSON}
    ) == {
        "plugins": [{"name": "a", "where": "/x", "tags": ["t"]}],
        "code": "INVALID_JSON",
    }


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "recursion limit exceeded"),
        (b'{"event": "a:b", "data": {"x": ' + b"[" * 300 + b"]" * 300 + b"}}", "recursion"),
        (b'{"event": "a:b", "data": {"n": ' + b"9" * 5000 + b"}}", "number out of range"),
        (b'{"event": "a:b", "bad": 1, "n": ' + b"9" * 5000 + b"}", "number out of range"),
        (b'{"event": "a:b", "correlation_id": "\\ud800"}', "hex escape"),
    ],
)
def test_lines_json_loads_chokes_on_are_invalid_json_not_a_crash(line, fragment):
    failure = parse_request(line)
    assert isinstance(failure, ProtocolFailure)
    assert failure.code is ErrorCode.INVALID_JSON
    assert fragment in failure.message


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_reply_is_strict_json_even_with_nan_or_infinity_in_the_answer(value):
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    line = encode_reply("test:echo", 1, {"x": value})
    assert json.loads(line, parse_constant=refuse)["data"] == {"x": None}
