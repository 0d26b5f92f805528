"""Jinja filters the template needs to turn any answer into valid names and literals.

Cookiecutter puts the template folder on ``sys.path`` and loads :class:`KsiPluginFilters`
through the ``_extensions`` key of ``cookiecutter.json``; only stdlib and jinja2 here.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

_EMAIL_AUTHOR = re.compile(r"\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>\s]+)>\s*")


def module_slug(name: str) -> str:
    """Default import name: lowercase, every run of other characters becomes ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def dist_slug(name: str) -> str:
    """Default distribution-name suffix: lowercase words joined by ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def namespace_slug(name: str) -> str:
    """Default event namespace: what the event grammar allows, lowercase."""
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_-")


def path_part(name: str) -> str:
    """One path component, so a refused ``a/b`` cannot leave an ``a/`` folder behind."""
    return re.sub(r"[/\\]+", "-", str(name))


def class_name(module: str) -> str:
    """``weather_station`` -> ``WeatherStationPlugin``, the plugin class in ``plugin.py``."""
    words = "".join(part[:1].upper() + part[1:] for part in module.split("_"))
    return words if words.endswith("Plugin") else f"{words}Plugin"


def _py_escape(char: str, quote: str) -> str:
    if char in ("\\", quote):
        return "\\" + char
    return char if char.isprintable() else repr(char)[1:-1]


def py_str(value: str) -> str:
    """A Python string literal for any text, quoted the way ``ruff format`` leaves it."""
    text = str(value)
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + "".join(_py_escape(char, quote) for char in text) + quote


def _toml_escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04X}"
    return char


def toml_str(value: str) -> str:
    """A TOML basic string for any text; non-ASCII characters stay as they are."""
    return '"' + "".join(_toml_escape(char) for char in str(value)) + '"'


def toml_author(author: str) -> str:
    """``Name <email>`` -> a pyproject ``authors`` table; a blank answer gives no author."""
    text = str(author).strip()
    if not text:
        return "[]"
    match = _EMAIL_AUTHOR.fullmatch(text)
    if match is None:
        return f"[{{ name = {toml_str(text)} }}]"
    name, email = match.group("name"), match.group("email")
    if not name:
        return f"[{{ email = {toml_str(email)} }}]"
    return f"[{{ name = {toml_str(name)}, email = {toml_str(email)} }}]"


def next_major(version: str) -> str:
    """The first release a plugin written for ``version`` cannot promise to work with."""
    major = str(version).split(".", 1)[0]
    return str(int(major) + 1) if major.isdigit() else str(version)


def b64json(context: Mapping[str, Any]) -> str:
    """Hand the answers to the pre-generation hook without any quoting to get wrong."""
    answers = {key: value for key, value in context.items() if isinstance(value, str)}
    return base64.b64encode(json.dumps(answers).encode()).decode("ascii")


FILTERS: tuple[Callable[..., str], ...] = (
    module_slug,
    dist_slug,
    namespace_slug,
    path_part,
    class_name,
    py_str,
    toml_str,
    toml_author,
    next_major,
    b64json,
)


class KsiPluginFilters(Extension):
    """Registers :data:`FILTERS` under their own names."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update({function.__name__: function for function in FILTERS})
