"""Refuse answers that would generate a plugin that cannot install, import or route events.

Runs in cookiecutter's interpreter, where ksi_host may not be installed: stdlib only.
The rules mirror ``ksi_host.events`` (namespace grammar), ``ksi_host.plugin_types``
(plugin names) and PEP 508 (distribution names); tests check they agree.
"""

from __future__ import annotations

import base64
import json
import keyword
import re
import sys
from collections.abc import Mapping
from typing import Final

ANSWERS_B64: Final = "{{ cookiecutter|b64json }}"

# PEP 508 names, which is also what ksi_host.plugin_types.canonical_name accepts.
_NAME: Final = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
# ksi_host.events: a segment is [a-z][a-z0-9_-]* of at most 64 characters.
_NAMESPACE: Final = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_MODULE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE_MAX: Final = 40
_VERSION: Final = re.compile(r"[0-9]+(\.[0-9]+){0,3}")
_TAKEN_MODULES: Final = frozenset({"ksi_host", "ksi_plugins_builtin", "tests", "test"})


def _suggest(text: str, allowed: str, sep: str) -> str:
    """The closest value the rule accepts, to print after 'type'."""
    return re.sub(f"[^{allowed}]+", sep, text.lower()).strip("_-.")


def _check_plugin_name(value: str) -> str | None:
    if _NAME.fullmatch(value):
        return None
    better = _suggest(value, "a-z0-9._-", "_") or "my_plugin"
    return (
        f"plugin_name {value!r} is not a valid plugin name: use ASCII letters, digits, "
        f"'.', '_' or '-', starting and ending with a letter or digit; "
        f"type plugin_name={better}"
    )


def _check_module_name(value: str) -> str | None:
    better = _suggest(value, "a-z0-9_", "_") or "my_plugin"
    if better[:1].isdigit():
        better = f"plugin_{better}"
    if not _MODULE.fullmatch(value):
        reason = (
            "is not a Python identifier (ASCII letters, digits and '_', not starting with a digit)"
        )
    elif len(value) > _MODULE_MAX:
        reason = f"is longer than {_MODULE_MAX} characters"
        better = better[:_MODULE_MAX].rstrip("_")
    elif keyword.iskeyword(value):
        reason, better = "is a Python keyword", f"{value}_plugin"
    elif value in sys.stdlib_module_names or value in _TAKEN_MODULES:
        reason, better = "would shadow a module that already exists", f"{value}_plugin"
    else:
        return None
    return f"module_name {value!r} {reason}; type module_name={better}"


def _check_dist_name(value: str) -> str | None:
    if _NAME.fullmatch(value):
        return None
    better = _suggest(value, "a-z0-9._-", "-") or "ksi-plugin-my-plugin"
    return (
        f"dist_name {value!r} is not a valid distribution name (PEP 508: ASCII letters, "
        f"digits, '.', '_' or '-', starting and ending with a letter or digit); "
        f"type dist_name={better}"
    )


def _check_namespace(value: str) -> str | None:
    if _NAMESPACE.fullmatch(value):
        return None
    better = _suggest(value, "a-z0-9_-", "_")
    if not better[:1].isalpha():
        better = f"ns_{better}".rstrip("_")
    return (
        f"namespace {value!r} does not fit events like '<namespace>:ping': it must start "
        f"with a lowercase letter and contain only lowercase letters, digits, '_' and '-' "
        f"(at most 64); type namespace={better[:64]}"
    )


def _check_description(value: str) -> str | None:
    if "\n" not in value and "\r" not in value:
        return None
    return (
        "description must be one line (it becomes the package summary); type it without line breaks"
    )


def _check_min_version(value: str) -> str | None:
    if _VERSION.fullmatch(value):
        return None
    return (
        f"ksi_host_min_version {value!r} is not a release number like 0.1 or 1.2.3; "
        f"type ksi_host_min_version=0.1"
    )


CHECKS: Final = {
    "plugin_name": _check_plugin_name,
    "module_name": _check_module_name,
    "dist_name": _check_dist_name,
    "namespace": _check_namespace,
    "description": _check_description,
    "ksi_host_min_version": _check_min_version,
}


def problems(answers: Mapping[str, str]) -> list[str]:
    """Every answer that cannot be used, each with what to type instead."""
    found = (check(answers.get(key, "")) for key, check in CHECKS.items())
    return [problem for problem in found if problem is not None]


def main() -> int:
    answers = json.loads(base64.b64decode(ANSWERS_B64))
    found = problems(answers)
    if not found:
        return 0
    print("error: cannot generate this plugin:", file=sys.stderr)
    for problem in found:
        print(f"  - {problem}", file=sys.stderr)
    print("Nothing was written. Run cookiecutter again with the values above.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
