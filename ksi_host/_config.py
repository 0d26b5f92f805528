"""The host's configuration: one TOML file plus ``KSI_``-prefixed environment overrides.

The file::

    [host]
    plugin_paths = ["~/my-plugins"]     # folders searched for plugins
    disabled = ["noisy_plugin"]         # plugins that are found but not loaded
    services = { database = "sqlite" }  # chosen provider per service name
    commands = { "greet:hello" = "a" }  # which plugin answers a command several declare
    trust_paths = ["/srv/shared"]       # plugin code trusted whoever owns or can write it
    startup_timeout = 30.0              # seconds each plugin gets for context and startup
    shutdown_timeout = 10.0             # seconds each plugin gets for ksi_shutdown
    max_emit_depth = 32                 # events emitted from handlers, nested, before refusing
    call_timeout = 30.0                 # seconds every hook call at run time gets
    call_timeouts = { slow_plugin = 120.0 }  # per-plugin overrides of call_timeout
    watchdog_threshold = 0.5            # seconds the event loop may block before it is logged
    stop_grace = 10.0                   # seconds past [server] drain_timeout before a forced stop
    isolated = ["risky_plugin"]         # plugins run each in a worker process ("*": all)
    restart_limit = 5                   # worker restarts within restart_window before giving up
    restart_window = 60.0
    worker_memory_mb = 1024             # per-worker address-space limit (none by default)
    worker_cpu_seconds = 3600           # per-worker CPU-time limit (none by default)
    history_size = 1000                 # events system:history keeps, at most ...
    history_bytes = 4194304             # ... and at most this many bytes of their data (JSON)

    [server]                            # the socket and its limits (ServerConfig)
    socket_path = "/run/ksi/ksi.sock"

    [my_plugin]                         # every other table: that plugin's section
    setting = "value"

Environment variables override the file, nested with ``__``: ``KSI_HOST__DISABLED='["a"]'``
(lists and tables are JSON), ``KSI_SERVER__SOCKET_PATH=/tmp/ksi.sock``, and
``KSI_MY_PLUGIN__SETTING=other`` for the ``[my_plugin]`` section (with or without that table
in the file).

Which file: the ``path`` argument (``--config``), else ``$KSI_CONFIG``, else the default
of :class:`~ksi_host._paths.KsiPaths`. A missing default file means "all defaults"; a
missing file that was asked for is an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from ksi_host._defaults import HISTORY_BYTES, HISTORY_SIZE
from ksi_host._names import canonical_name
from ksi_host._paths import KsiPaths
from ksi_host._suggest import did_you_mean
from ksi_host._trust import TrustPolicy, first_distrust
from ksi_host.errors import ConfigError, PluginConfigInvalid, UntrustedConfig

__all__ = [
    "ENV_PREFIX",
    "NESTED",
    "RESERVED",
    "HostConfig",
    "HostSection",
    "config_from_mapping",
    "env_variable",
    "error_message",
    "load_config",
    "plugin_settings",
    "read_config_file",
]

ENV_PREFIX: Final = "KSI_"
NESTED: Final = "__"
RESERVED: Final = ("host", "server")
_AT_LINE: Final = re.compile(r"\(at line (\d+), column (\d+)\)")


def _no_names() -> list[str]:
    """An empty list, as ``default_factory=list`` makes one.

    Given ``list`` itself, pydantic asks :func:`inspect.signature` about it, whose first
    parse of a built-in's text signature compiles tokenize's expressions: ~4 ms of
    every command that reads the config.
    """
    return []


class HostSection(BaseModel):
    """The ``[host]`` table: where plugins come from and which ones load."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plugin_paths: list[str] = Field(default_factory=_no_names)
    disabled: list[str] = Field(default_factory=_no_names)
    services: dict[str, str] = Field(default_factory=dict)
    commands: dict[str, str] = Field(default_factory=dict)
    trust_paths: list[str] = Field(default_factory=_no_names)
    startup_timeout: float = Field(default=30.0, gt=0)
    shutdown_timeout: float = Field(default=10.0, gt=0)
    max_emit_depth: int = Field(default=32, ge=1)
    call_timeout: float = Field(default=30.0, gt=0)
    call_timeouts: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    watchdog_threshold: float = Field(default=0.5, ge=0)
    stop_grace: float = Field(default=10.0, gt=0)
    isolated: list[str] = Field(default_factory=_no_names)
    restart_limit: int = Field(default=5, ge=0)
    restart_window: float = Field(default=60.0, gt=0)
    worker_memory_mb: int | None = Field(default=None, gt=0)
    worker_cpu_seconds: int | None = Field(default=None, gt=0)

    history_size: int = Field(default=HISTORY_SIZE, ge=0)
    history_bytes: int = Field(default=HISTORY_BYTES, ge=0)

    def call_timeout_for(self, plugin: str) -> float:
        """The deadline of one call into ``plugin``: its override, else ``call_timeout``."""
        if plugin in self.call_timeouts:
            return self.call_timeouts[plugin]
        key = _canonical_or_none(plugin)
        for name, seconds in self.call_timeouts.items():
            if _canonical_or_none(name) == key:
                return seconds
        return self.call_timeout


class HostConfig(BaseModel):
    """The whole configuration; tables other than ``host`` and ``server`` are plugin sections."""

    model_config = ConfigDict(frozen=True, extra="allow")

    host: HostSection = Field(default_factory=HostSection)
    server: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _fold_reserved(cls, data: object) -> object:
        """``[HOST]`` is ``[host]``: the two tables are matched case-insensitively.

        The first spelling in the file wins and any other is dropped, as ever.
        """
        if not isinstance(data, dict):
            return data
        folded = dict(data)
        for name in RESERVED:
            spellings = [key for key in data if isinstance(key, str) and key.lower() == name]
            for key in spellings:
                del folded[key]
            if spellings:
                folded[name] = data[spellings[0]]
        return folded

    @property
    def plugin_sections(self) -> dict[str, dict[str, Any]]:
        """Every table that is not ``[host]`` or ``[server]``, by its name in the file."""
        return {name: dict(value) for name, value in (self.model_extra or {}).items()}

    def plugin_section(self, name: str) -> dict[str, Any] | None:
        """The section of plugin ``name`` (``[my_plugin]`` and ``[my-plugin]`` both match).

        One rule with :meth:`sections_by_key`, which the plan and doctor use: the host
        hands a plugin exactly the section its config was checked against.
        """
        key = _canonical_or_none(name)
        return None if key is None else self.sections_by_key().get(key)

    def sections_by_key(self) -> dict[str, dict[str, Any]]:
        """Every plugin section by canonical plugin name, as plugins are looked up."""
        found: dict[str, dict[str, Any]] = {}
        for name, value in self.plugin_sections.items():
            key = _canonical_or_none(name)
            if key is not None:
                found.setdefault(key, value)
        return found

    def as_context_dict(self) -> dict[str, Any]:
        """The whole config as plain data, for ``context["config"]``."""
        return self.model_dump(mode="json")


def plugin_settings(
    name: str, plugin: object, section: Mapping[str, Any] | None
) -> BaseModel | None:
    """A plugin's config section as an instance of its ``config_model`` (``None`` without one).

    The plan checks it for every imported plugin (:mod:`ksi_host._vet`, in the host
    and in doctor's worker alike), and the host hands the instance to the plugin as
    ``context.settings``. Raises :class:`PluginConfigInvalid` naming every bad key.
    """
    model = getattr(type(plugin), "config_model", None)
    if model is None:
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginConfigInvalid(
            plugin=name,
            problems=[("config_model", f"is a {type(model).__name__}, not a pydantic model class")],
        )
    try:
        return model.model_validate(dict(section or {}))
    except ValidationError as exc:
        raise PluginConfigInvalid(
            plugin=name,
            problems=[
                (".".join(map(str, err["loc"])) or "<section>", error_message(err, model))
                for err in exc.errors()
            ],
        ) from None


def error_message(error: ErrorDetails, model: type[BaseModel]) -> str:
    """pydantic's message, plus the closest allowed key when the key is unknown (a typo)."""
    if error["type"] != "extra_forbidden" or not error["loc"]:
        return error["msg"]
    key = str(error["loc"][-1])
    fields = _fields_at(model, error["loc"][:-1])
    suggestion = did_you_mean(key, fields) if fields else None
    return f"unknown key {key!r}" + (f"; {suggestion}" if suggestion else "")


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the (nested) model at ``loc`` in ``model``; none if it is not one."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _canonical_or_none(name: str) -> str | None:
    try:
        return canonical_name(name)
    except ValueError:
        return None


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> HostConfig:
    """Read the config file (if any) and apply ``KSI_`` environment overrides."""
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("KSI_CONFIG"))
    file = Path(path).expanduser() if path is not None else KsiPaths.from_env(env).config_file
    _check_trusted(file, _env_overrides({}, env).get("host", {}).get("trust_paths", ()))
    data = read_config_file(file, explicit=explicit)
    _check_top_level(data, file)
    overrides = _env_overrides(data, env)
    merged = _deep_merge(data, overrides)
    try:
        return HostConfig(**merged)
    except ValidationError as exc:
        raise _translate(exc, file, env) from None


def _check_trusted(file: Path, trust_paths: Sequence[str]) -> None:
    """Refuse a config file (or its folder) that another user can write or owns.

    The config says which plugin code runs, so it is held to the plugin folders' rule
    (:mod:`ksi_host._trust`). It cannot vouch for itself: only ``KSI_HOST__TRUST_PATHS``
    in the environment opts a shared config in, never ``trust_paths`` inside it.
    """
    found = (
        first_distrust([file, file.parent], TrustPolicy.of(trust_paths)) if file.exists() else None
    )
    if found is not None:
        raise UntrustedConfig(file=file, problem=found.problem, fix=found.fix, real=found.real)


def config_from_mapping(data: Mapping[str, Any], *, source: str) -> HostConfig:
    """A config from plain data, checked as a file's would be; ``source`` names it in errors."""
    _check_top_level(data, source)
    try:
        return HostConfig(**data)
    except ValidationError as exc:
        raise _translate(exc, source, {}) from None


def read_config_file(file: Path, *, explicit: bool) -> dict[str, Any]:
    """The file's TOML as data; a missing file is ``{}`` unless it was asked for (``explicit``)."""
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if not explicit:
            return {}
        raise ConfigError(
            what=f"config file {str(file)!r} does not exist",
            where="--config or KSI_CONFIG",
            hint="create the file, or point --config/KSI_CONFIG at an existing TOML file",
            file=file,
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            what=f"config file is not UTF-8 text: {exc.reason} at byte {exc.start}",
            where=str(file),
            hint="save the file as UTF-8",
            file=file,
        ) from None
    except OSError as exc:
        raise ConfigError(
            what=f"cannot read config file: {exc.strerror or exc}",
            where=str(file),
            hint="check that the path is a readable file",
            file=file,
        ) from None
    from ksi_host._toml import tomllib  # only with a file: no config is all defaults

    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _AT_LINE.search(message)  # tomllib says where only in its message before 3.14
        line, column = (int(at.group(1)), int(at.group(2))) if at else (None, None)
        where = f"{file}, line {line}, column {column}" if at else str(file)
        raise ConfigError(
            what=f"config file is not valid TOML: {_AT_LINE.sub('', message).strip()}",
            where=where,
            hint="fix the TOML syntax at that position (see https://toml.io)",
            file=file,
            line=line,
            column=column,
        ) from None
    return data


def _check_top_level(data: Mapping[str, Any], file: Path | str) -> None:
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(
                what=f"top-level key {name!r} is a {type(value).__name__}, not a table",
                where=f"{file}, key {name!r}",
                hint=f"settings go in tables: [host], [server], or [<plugin name>] "
                f"(e.g. move it under [{name}] as 'value = ...')",
                file=file if isinstance(file, Path) else None,
                keys=[name],
            )


def _env_overrides(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Environment overrides for [host], [server] and every plugin section.

    A plugin section is the file's table or a ``KSI_<SECTION>__<KEY>`` variable, so
    ``KSI_STATE__PATH`` works with no ``[state]`` table in the file. Only when a
    variable could override something is pydantic-settings imported to parse them
    (:mod:`ksi_host._config_env`): most commands run with none set.
    """
    tables = {*RESERVED, *(str(name).lower() for name in data)}
    if not any(_may_override(name, tables) for name in env):
        return {}
    from ksi_host._config_env import env_overrides

    return env_overrides(data, env)


def _may_override(variable: str, tables: set[str]) -> bool:
    """Whether pydantic-settings would read ``variable``: a whole table, or a key in one."""
    name = variable.lower()
    prefix = ENV_PREFIX.lower()
    return name.startswith(prefix) and (NESTED in name or name[len(prefix) :] in tables)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def env_variable(loc: tuple[int | str, ...], env: Mapping[str, str]) -> str | None:
    """The KSI_ variable that set the value at ``loc`` (or a table around it), if one did."""
    for end in range(len(loc), 0, -1):
        variable = ENV_PREFIX + NESTED.join(str(part) for part in loc[:end]).upper()
        if variable in env:
            return variable
    return None


def _translate(exc: ValidationError, file: Path | str, env: Mapping[str, str]) -> ConfigError:
    lines, wheres, keys, variables = [], [], [], []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        variable = env_variable(error["loc"], env)
        source = f"environment variable {variable}" if variable else str(file)
        message = error_message(error, HostConfig)
        lines.append(f"{key} = {json.dumps(error.get('input'), default=repr)}: {message}")
        wheres.append(f"{source}, key {key!r}")
        keys.append(key)
        if variable:
            variables.append(variable)
    return ConfigError(
        what="invalid configuration:\n" + "\n".join(f"    - {line}" for line in lines),
        where="; ".join(dict.fromkeys(wheres)),
        hint="[host] takes plugin_paths and disabled (lists of strings), services "
        "(a table of service = provider), startup_timeout, shutdown_timeout, call_timeout "
        "and stop_grace (seconds, more than 0), call_timeouts (a table of plugin = seconds), "
        "watchdog_threshold (seconds, 0 turns the watchdog off), max_emit_depth (1 or more), "
        'isolated (plugin names, or "*"), restart_limit and restart_window, '
        "worker_memory_mb and worker_cpu_seconds (more than 0), history_size and "
        "history_bytes (0 or more)",
        file=file if isinstance(file, Path) and len(variables) < len(keys) else None,
        keys=keys,
        env_variables=list(dict.fromkeys(variables)),
    )
