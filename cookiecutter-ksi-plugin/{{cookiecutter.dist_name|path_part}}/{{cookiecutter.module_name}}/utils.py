"""The success reply of the KSI guide's pattern; its error reply is ``ksi_host.error_reply``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = ["success_reply", "validation_message"]


def success_reply(result: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "result": result}


def validation_message(exc: ValidationError) -> str:
    """One line naming every bad field, e.g. ``message: Field required``."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "data"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)
