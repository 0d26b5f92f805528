"""Typed errors that say what went wrong, where, and how to fix it.

Every error the host raises on purpose is a :class:`KsiError`; anything else that
escapes is a bug in ksi-host. The tree::

    KsiError
    ├── InvalidPluginMetadata   (ValueError)  metadata or capabilities that do not validate
    ├── InvalidEventName        (ValueError)  an event name outside the namespace:action grammar
    ├── PluginRegistrationError (TypeError)   not a plugin, or a hook that does not match its spec
    ├── TransportNotAttached    (RuntimeError) a transport emitting before a host attached it
    ├── ConfigError             (ValueError)  a config file or section that does not validate
    └── MissingExtra            (ImportError) a feature asked for whose optional library is absent

Like pip's diagnostic errors, each error keeps its parts (``what``, ``where``,
``hint``) as data and renders them the same way everywhere; like pluggy's
``PluginValidationError`` it keeps the culprit (``.plugin``) on the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "ConfigError",
    "InvalidEventName",
    "InvalidPluginMetadata",
    "KsiError",
    "MetadataProblem",
    "MissingExtra",
    "PluginRegistrationError",
    "TransportNotAttached",
]


class KsiError(Exception):
    """Base of every error ksi-host raises on purpose."""

    reference: ClassVar[str] = "ksi-error"
    exit_code: ClassVar[int] = 1

    def __init__(self, *, what: str, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """Render as ``error[reference]: what`` plus indented ``where``/``hint`` lines."""
        lines = [f"error[{self.reference}]: {self.what}"]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class MetadataProblem:
    """One field of plugin metadata that did not validate."""

    __slots__ = ("example", "field", "message", "value")

    def __init__(self, *, field: str, value: object, message: str, example: str) -> None:
        self.field = field
        self.value = value
        self.message = message
        self.example = example

    def __repr__(self) -> str:
        return f"MetadataProblem(field={self.field!r}, value={self.value!r})"

    def render(self) -> str:
        """One line of :class:`InvalidPluginMetadata`'s list: field, value, why, and an example."""
        return f"{self.field} = {self.value!r}: {self.message} (for example: {self.example})"


class InvalidPluginMetadata(KsiError, ValueError):
    """Metadata or capabilities of a plugin that do not validate; lists every problem."""

    reference = "invalid-metadata"

    def __init__(self, *, plugin: str, model: str, problems: Sequence[MetadataProblem]) -> None:
        self.plugin = plugin
        self.model = model
        self.problems = tuple(problems)
        count = len(self.problems)
        details = "\n".join(f"    - {p.render()}" for p in self.problems)
        super().__init__(
            what=f"plugin {plugin!r} has invalid {model} ({count} problem{'s' * (count != 1)})\n"
            + details,
            where=f"{model}(...) of plugin {plugin!r}",
            hint="fix the values above in the plugin's metadata; each line shows a valid example",
        )


class InvalidEventName(KsiError, ValueError):
    """An event name that is not ``namespace:action``."""

    reference = "invalid-event-name"

    def __init__(self, name: object, *, reason: str) -> None:
        self.name = name
        super().__init__(
            what=f"invalid event name {name!r}: {reason}",
            where="event name",
            hint="use 'namespace:action' in lowercase letters, digits, '_' and '-', "
            "e.g. 'system:health'",
        )


class PluginRegistrationError(KsiError, TypeError):
    """An object that pluggy cannot register as a KSI plugin."""

    reference = "plugin-registration"

    def __init__(
        self, *, plugin: object, name: str, what: str, hook: str | None = None, hint: str
    ) -> None:
        self.plugin = plugin
        self.name = name
        self.hook = hook
        where = f"plugin {name!r}" + (f", hook {hook!r}" if hook else "")
        super().__init__(what=what, where=where, hint=hint)


class TransportNotAttached(KsiError, RuntimeError):
    """A transport asked to emit an event before any host attached itself."""

    reference = "transport-not-attached"

    def __init__(self, *, transport: str) -> None:
        self.transport = transport
        super().__init__(
            what=f"transport {transport!r} is not attached to a host",
            where=f"{transport}.emit_event(...)",
            hint="load it through ksi_host (or call attach(emitter)) before emitting",
        )


class ConfigError(KsiError, ValueError):
    """A configuration file or section that cannot be used."""

    reference = "config-error"


class MissingExtra(KsiError, ImportError):
    """A feature was asked for, and the optional library it runs on is not installed."""

    reference = "missing-extra"

    def __init__(self, *, feature: str, module: str, install: str, where: str) -> None:
        self.feature = feature
        self.module = module
        self.install = install
        super().__init__(
            what=f"{feature} needs the {module!r} library, which is not installed",
            where=where,
            hint=f"run: {install}",
        )
