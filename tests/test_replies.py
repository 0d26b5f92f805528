"""ksi_host.replies: one ErrorCode enum and one error_reply, used by the host and plugins alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ksi_host import ErrorCode, error_reply

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_code_is_documented_in_the_protocol_and_the_guide() -> None:
    protocol = (DOCS / "PROTOCOL.md").read_text(encoding="utf-8")
    guide = (DOCS / "PLUGIN_GUIDE.md").read_text(encoding="utf-8")
    assert [code.value for code in ErrorCode if f"`{code.value}`" not in protocol] == []
    assert [code.value for code in ErrorCode if f"`{code.value}`" not in guide] == []


def test_a_code_is_its_string_in_json_and_in_text() -> None:
    assert json.loads(json.dumps(error_reply(ErrorCode.BLOCKED, "m"))) == {
        "status": "error",
        "error": {"code": "BLOCKED", "message": "m"},
    }
    assert ErrorCode.BLOCKED == "BLOCKED"
    assert str(ErrorCode.BLOCKED) == f"{ErrorCode.BLOCKED}" == "BLOCKED"


def test_the_plugin_at_fault_is_named_only_when_given() -> None:
    assert "plugin" not in error_reply(ErrorCode.NO_HANDLER, "m")["error"]
    assert error_reply("QUOTA_EXCEEDED", "m", plugin="p")["error"] == {
        "code": "QUOTA_EXCEEDED",
        "message": "m",
        "plugin": "p",
    }


@given(st.text().filter(lambda text: not text.isupper() or " " in text or not text[:1].isalpha()))
def test_anything_but_an_upper_snake_code_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE_CASE"):
        error_reply(code, "m")


def test_a_message_must_be_text() -> None:
    with pytest.raises(TypeError, match="an error message is a str, not int"):
        error_reply(ErrorCode.INVALID_INPUT, 3)  # type: ignore[arg-type]
