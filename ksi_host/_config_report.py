"""``ksi-host config``: the effective configuration, each value with where it came from.

Every value has one source, in the order that wins: a flag of the command
(``--socket``, ``--state-db``, ``--plugin-path``), a ``KSI_*`` environment variable,
the config file (with its line), or the default. The values are the ones
:func:`~ksi_host._config.load_config` and :meth:`ServerConfig.from_section` produce,
so this view cannot disagree with what ``run`` uses.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from ksi_host._config import ENV_PREFIX, HostSection, load_config, read_config_file
from ksi_host._paths import KsiPaths
from ksi_host._server_config import ServerConfig
from ksi_host._suggest import did_you_mean
from ksi_host._trace import TraceSettings

__all__ = ["ConfigReport", "ConfigValue", "config_report", "key_lines", "render_config"]

Source = Literal["flag", "env", "file", "default"]

_TABLE: Final = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_KEY: Final = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_ENV_SETTINGS: Final = (
    "KSI_PLUGIN_PATH",
    "KSI_DISABLE_PLUGINS",
    "KSI_DISABLE_PLUGIN_AUTOLOAD",
)


class ConfigValue(BaseModel):
    """One effective setting: ``section.key``, its value, and where it came from."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: Any
    source: Source
    where: str


class ConfigReport(BaseModel):
    """What ``ksi-host config --json`` prints."""

    model_config = ConfigDict(frozen=True)

    file: str
    file_found: bool
    file_chosen_by: str
    values: list[ConfigValue]
    notes: list[str]


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (1-based) of each table and key of a TOML text, by its dotted path.

    >>> key_lines('[host]\\ndisabled = ["a"]\\n[server]\\nmax_connections = 3\\n')
    {('host',): 1, ('host', 'disabled'): 2, ('server',): 3, ('server', 'max_connections'): 4}
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            table = _dotted(header.group(1))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            path = (*table, *_dotted(key.group(1)))
            for end in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:end], number)
    return lines


class _Sources:
    """Decides where the value at a dotted path came from: env, file, or default."""

    def __init__(self, file: Path, data: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.file = file
        self.data = data
        self.env = {name.upper(): name for name in env}
        try:
            self.lines = key_lines(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            self.lines = {}

    def of(self, path: tuple[str, ...]) -> tuple[Source, str]:
        for end in range(len(path), 0, -1):
            variable = ENV_PREFIX + "__".join(path[:end]).upper()
            if variable in self.env:
                return "env", self.env[variable]
        node: Any = self.data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return "default", "default"
            node = node[part]
        line = self._line(path)
        return "file", f"{self.file}:{line}" if line else str(self.file)

    def _line(self, path: tuple[str, ...]) -> int | None:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def config_report(
    config_file: Path | None = None,
    *,
    socket_path: Path | None = None,
    state_db: Path | None = None,
    plugin_paths: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ConfigReport:
    """The effective configuration of ``run`` with these flags, value by value."""
    env = os.environ if env is None else env
    paths = KsiPaths.from_env(env)
    file = Path(config_file).expanduser() if config_file is not None else paths.config_file
    chosen_by = (
        "--config"
        if config_file is not None
        else "KSI_CONFIG"
        if env.get("KSI_CONFIG")
        else "KSI_HOME"
        if env.get("KSI_HOME")
        else "default"
    )
    config = load_config(config_file, env)
    data = read_config_file(file, explicit=False)
    sources = _Sources(file, data, env)
    values: list[ConfigValue] = []

    def add(path: tuple[str, ...], value: Any, origin: tuple[Source, str] | None = None) -> None:
        source, where = origin or sources.of(path)
        values.append(
            ConfigValue(key=".".join(path), value=_plain(value), source=source, where=where)
        )

    for name in HostSection.model_fields:
        value = getattr(config.host, name)
        if name == "plugin_paths" and plugin_paths:
            add(("host", name), [*plugin_paths, *value], ("flag", "--plugin-path"))
        else:
            add(("host", name), value)
    server = ServerConfig.from_section(
        config.server, where=str(file), socket_path=socket_path, env=env
    )
    for name in ServerConfig.model_fields:
        origin: tuple[Source, str] | None = None
        if name == "socket_path" and socket_path is not None:
            origin = ("flag", "--socket")
        elif name == "socket_path" and env.get("KSI_SOCKET"):
            origin = ("env", "KSI_SOCKET")
        add(("server", name), getattr(server, name), origin)
    state_override = _state_override(state_db, env)
    for section, table in config.plugin_sections.items():
        for key, value in table.items():
            if state_override is None or (section, key) != ("state", "path"):
                add((section, key), value)
    if state_override is not None:
        path, origin = state_override
        add(("state", "path"), path, origin)
    add(
        ("home",),
        str(paths.home),
        ("env", "KSI_HOME") if env.get("KSI_HOME") else ("default", "default"),
    )
    trace = TraceSettings.from_env(env)
    add(
        ("trace",),
        sorted(trace.namespaces) or trace.enabled,
        ("env", "KSI_TRACE") if env.get("KSI_TRACE") else ("default", "default"),
    )
    for variable in _ENV_SETTINGS:
        if env.get(variable):
            add((variable,), env[variable], ("env", variable))
    return ConfigReport(
        file=str(file),
        file_found=file.is_file(),
        file_chosen_by=chosen_by,
        values=values,
        notes=_notes(config.plugin_sections),
    )


def _state_override(
    state_db: Path | None, env: Mapping[str, str]
) -> tuple[str, tuple[Source, str]] | None:
    """``run --state-db`` (or its variable ``KSI_STATE_DB``) replaces ``[state] path``."""
    if state_db is not None:
        return str(state_db), ("flag", "--state-db")
    if env.get("KSI_STATE_DB"):
        return env["KSI_STATE_DB"], ("env", "KSI_STATE_DB")
    return None


def _notes(sections: Mapping[str, Any]) -> list[str]:
    """Tables that are probably a typo of ``[host]`` or ``[server]``."""
    notes = []
    for name in sections:
        suggestion = did_you_mean(name, ("host", "server"))
        if suggestion:
            notes.append(
                f"[{name}] is read as the section of a plugin named {name!r}; {suggestion}"
            )
    return notes


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def render_config(report: ConfigReport) -> str:
    """``[section]`` blocks of ``key = value`` lines, each with its source on the right."""
    found = "" if report.file_found else " (not found: every value is the default)"
    lines = [f"# config file: {report.file} (chosen by {report.file_chosen_by}){found}"]
    width = max((len(v.key.partition(".")[2] or v.key) for v in report.values), default=0)
    section = None
    for value in report.values:
        table, _, key = value.key.partition(".")
        comment = ""
        if not key:  # not a config key: commented out, so the output stays valid TOML
            table, key, comment = "environment", table, "# "
        elif value.value is None:  # unset (e.g. no worker limit): TOML has no null
            comment = "# "
        if table != section:
            lines.append("")
            lines.append(f"[{table}]" if table != "environment" else "# environment")
            section = table
        shown = json.dumps(value.value)
        lines.append(f"{comment}{key:<{width}} = {shown:<40}  # {value.where}")
    lines.extend(f"# note: {note}" for note in report.notes)
    return "\n".join(lines)
