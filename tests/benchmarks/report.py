"""Markdown for BENCHMARKS.md: each benchmark returns its section built with these helpers."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    align = [":---", *("---:" for _ in headers[1:])]
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def section(title: str, about: str, lines: Sequence[str]) -> list[str]:
    """``## title``, a paragraph saying what is measured against what, then ``lines``."""
    return [f"## {title}", "", about, "", *lines, ""]


def ratio(value: float, floor: float) -> str:
    """``value / floor`` as the tables print it: ``0.93x``."""
    return f"{value / floor:.2f}x"
