"""What a plugin says about itself: the guide's ``PluginMetadata`` and ``PluginCapabilities``.

These models cross a boundary (plugin authors write them, the resolver, ``plugins
--json`` and ``doctor`` read them), so they are strict pydantic models: frozen,
no unknown fields, and every bad value is reported at once with the plugin, the
field, the value and a valid example.

>>> meta = PluginMetadata(name="my_plugin", version="1.0", dependencies=["database>=1.2,<2"])
>>> meta.key, meta.version, meta.dependencies
('my-plugin', '1.0', ('database>=1.2,<2',))
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Annotated, Any, Final

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator

from ksi_host._names import canonical_name
from ksi_host._requirements import parsed
from ksi_host.errors import InvalidEventName, InvalidPluginMetadata, MetadataProblem
from ksi_host.events import EVENT_NAME_EXAMPLE, check_event_name, normalise_namespace

__all__ = ["PluginCapabilities", "PluginMetadata", "canonical_name"]

_EXAMPLES: Final[dict[str, str]] = {
    "name": "'my_plugin'",
    "version": "'1.0.0'",
    "description": "'Stores key/value pairs'",
    "author": "'Jane Doe <jane@example.org>'",
    "dependencies": "['database', 'auth>=1.2,<2']",
    "after_dependencies": "['metrics']",
    "event_namespaces": "['/system']",
    "commands": f"['{EVENT_NAME_EXAMPLE}']",
    "provides_services": "['database']",
}


def _checked_name(value: str) -> str:
    canonical_name(value)
    return value


def _checked_requirement(value: str) -> str:
    """Checked, but kept as written: every message quotes a requirement as its author did."""
    _parse_requirement(value)
    return value.strip()


def _checked_namespace(value: str) -> str:
    try:
        return normalise_namespace(value)
    except InvalidEventName:
        raise ValueError(f"{value!r} is not a namespace") from None


def _checked_command(value: str) -> str:
    try:
        return check_event_name(value)
    except InvalidEventName as exc:
        raise ValueError(f"{value!r} is not 'namespace:action': {exc.what}") from None


# One item of a list field each: pydantic checks every item and reports each bad one
# with its index (``dependencies[2]``), instead of stopping at the first.
_Name = Annotated[str, AfterValidator(_checked_name)]
_Requirement = Annotated[str, AfterValidator(_checked_requirement)]
_Namespace = Annotated[str, AfterValidator(_checked_namespace)]
_Command = Annotated[str, AfterValidator(_checked_command)]
_LIST_FIELDS: Final = ("dependencies", "after_dependencies")
_CAPABILITY_LISTS: Final = ("event_namespaces", "commands", "provides_services")


def _not_one_string(value: object) -> object:
    if isinstance(value, str):
        raise ValueError("must be a list of strings, not one string")
    return value


def _owner_hint() -> str:
    """Name the plugin class whose ``__init__`` is building this model, if any."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            is_init = frame.f_code.co_name == "__init__"
            if is_init and owner is not None and not isinstance(owner, _KsiModel):
                return type(owner).__name__
            frame = frame.f_back
        return "<unknown plugin>"
    finally:
        del frame


class _KsiModel(BaseModel):
    """Frozen, strict, and raising :class:`InvalidPluginMetadata` instead of pydantic's error.

    Built on first use, not on import (``defer_build``): importing the plugin contract
    costs no schema, and pydantic's first build comes after the command has had its say
    (:mod:`ksi_host._pydantic_plugins`).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, defer_build=True
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._translate(exc, data) from None

    @classmethod
    def _plugin_label(cls, data: dict[str, Any]) -> str:
        return _owner_hint()

    @classmethod
    def _translate(cls, exc: ValidationError, data: dict[str, Any]) -> InvalidPluginMetadata:
        problems = []
        for err in exc.errors():
            loc = err["loc"]
            field = str(loc[0]) if loc else "<model>"
            value: object = data.get(field, err.get("input")) if loc else data
            if len(loc) > 1 and isinstance(loc[1], int):
                field = f"{field}[{loc[1]}]"
                value = err.get("input")
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(
                MetadataProblem(
                    field=field,
                    value=value,
                    message=message,
                    example=_EXAMPLES.get(str(loc[0]) if loc else "", "see the plugin guide"),
                )
            )
        return InvalidPluginMetadata(
            plugin=cls._plugin_label(data), model=cls.__name__, problems=problems
        )


class PluginMetadata(_KsiModel):
    """Who a plugin is and what it needs before it can start."""

    name: str
    version: str | None = None
    description: str = ""
    author: str = ""
    dependencies: tuple[_Requirement, ...] = ()
    after_dependencies: tuple[_Name, ...] = ()

    @classmethod
    def _plugin_label(cls, data: dict[str, Any]) -> str:
        name = data.get("name")
        return name if isinstance(name, str) and name.strip() else _owner_hint()

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _checked_name(value)

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(Version(value))
        except InvalidVersion:
            raise ValueError("not a valid PEP 440 version") from None

    @field_validator(*_LIST_FIELDS, mode="before")
    @classmethod
    def _check_lists(cls, value: object) -> object:
        return _not_one_string(value)

    @cached_property
    def key(self) -> str:
        """The normalised name every comparison uses (``My_Plugin`` is ``my-plugin``)."""
        return canonical_name(self.name)

    @cached_property
    def requirements(self) -> tuple[Requirement, ...]:
        """``dependencies`` parsed, for the resolver."""
        return tuple(parsed(item) for item in self.dependencies)


def _parse_requirement(text: str) -> Requirement:
    try:
        req = parsed(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a requirement: {exc}") from None
    if req.url:
        raise ValueError(f"{text!r} names a URL; a dependency names a plugin or service")
    if req.extras:
        raise ValueError(f"{text!r} has extras, which plugin dependencies do not support")
    return req


class PluginCapabilities(_KsiModel):
    """Which events a plugin wants and which services it offers other plugins."""

    event_namespaces: tuple[_Namespace, ...] = ()
    commands: tuple[_Command, ...] = ()
    provides_services: tuple[_Name, ...] = ()

    @field_validator(*_CAPABILITY_LISTS, mode="before")
    @classmethod
    def _check_lists(cls, value: object) -> object:
        return _not_one_string(value)

    @property
    def routes_everything(self) -> bool:
        """A plugin that declares no events sees every event (the guide's minimal plugin)."""
        return not (self.event_namespaces or self.commands)
