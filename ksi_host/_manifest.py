"""``ksi-plugin.toml``: what a plugin says about itself, readable without importing it.

A plugin distribution may ship this file inside the plugin's top-level package (and
so in its ``RECORD``). It restates the plugin's ``PluginMetadata`` and
``PluginCapabilities``, the hooks it implements and the import path of its
``config_model``, and adds ``activation``: ``"startup"`` (imported and started with
the host) or ``"lazy"`` (imported the first time an event it declares arrives). The
file is written from the code (``ksi-host manifest``) and checked against it
(``ksi-host manifest --check``, ``ksi-host doctor``); see docs/MANIFEST.md.

>>> text = 'name = "greeter"\\nversion = "1.0"\\nhooks = ["ksi_handle_event"]\\n'
>>> manifest = PluginManifest.from_toml(text, where="ksi-plugin.toml")
>>> manifest.activation, manifest.metadata().key
('startup', 'greeter')
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ksi_host import hookspecs
from ksi_host.errors import InvalidManifest, InvalidPluginMetadata
from ksi_host.plugin_manager import hook_names
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

if TYPE_CHECKING:
    from ksi_host._plan import Candidate

__all__ = [
    "EAGER_HOOKS",
    "HOOKS",
    "MANIFEST_FILE",
    "Activation",
    "FieldDifference",
    "PluginManifest",
    "activates_lazily",
    "regenerate_command",
]

MANIFEST_FILE: Final = "ksi-plugin.toml"

Activation = Literal["startup", "lazy"]

HOOKS: Final = tuple(sorted(name for name in vars(hookspecs) if name.startswith("ksi_")))
"""Every hook of the plugin contract, the names ``hooks`` may list."""

EAGER_HOOKS: Final = ("ksi_filter_event", "ksi_metrics_collected")
"""Hooks that see every event (or every metrics call): a lazy plugin with one starts anyway."""

_EXAMPLE_FILE: Final = f"PACKAGE/{MANIFEST_FILE}"


@dataclass(frozen=True)
class FieldDifference:
    """One field where the manifest and the plugin's code disagree."""

    field: str
    manifest: object
    code: object

    def render(self) -> str:
        return f"{self.field}: manifest says {self.manifest!r}, code says {self.code!r}"


class PluginManifest(BaseModel):
    """The contents of ``ksi-plugin.toml`` (its JSON Schema is docs/ksi-plugin.schema.json)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        title="ksi-plugin.toml",
        json_schema_extra={"$id": "https://ksi-host.invalid/ksi-plugin.schema.json"},
        defer_build=True,
    )

    name: str = Field(description="PluginMetadata.name")
    version: str | None = Field(default=None, description="PluginMetadata.version")
    description: str = Field(default="", description="PluginMetadata.description")
    author: str = Field(default="", description="PluginMetadata.author")
    dependencies: tuple[str, ...] = Field(default=(), description="PluginMetadata.dependencies")
    after_dependencies: tuple[str, ...] = Field(
        default=(), description="PluginMetadata.after_dependencies"
    )
    provides_services: tuple[str, ...] = Field(
        default=(), description="PluginCapabilities.provides_services"
    )
    event_namespaces: tuple[str, ...] = Field(
        default=(), description="PluginCapabilities.event_namespaces"
    )
    commands: tuple[str, ...] = Field(default=(), description="PluginCapabilities.commands")
    hooks: tuple[str, ...] = Field(
        min_length=1, description="The hooks the plugin implements (@hookimpl), sorted"
    )
    config_model: str | None = Field(
        default=None,
        description="Import path of the plugin's config_model, 'module:Class'",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
    )
    activation: Activation = Field(
        default="startup",
        description="'startup': imported and started with the host; 'lazy': imported the "
        "first time an event it declares arrives",
    )

    @field_validator("hooks")
    @classmethod
    def _known_hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [hook for hook in value if hook not in HOOKS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))} not KSI hooks ({', '.join(HOOKS)})")
        return tuple(sorted(set(value)))

    @classmethod
    def from_toml(cls, text: str, *, where: str) -> PluginManifest:
        """Parse and validate; every problem (TOML, fields, metadata values) in one error."""
        return cls.read(text, where=where)[0]

    @classmethod
    def read(
        cls, text: str, *, where: str
    ) -> tuple[PluginManifest, PluginMetadata, PluginCapabilities]:
        """:meth:`from_toml`, with the metadata and capabilities it validated on the way."""
        from ksi_host._toml import tomllib  # a kept manifest (_manifest_cache) needs no parser

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidManifest(where=where, problems=[f"not valid TOML: {exc}"]) from None
        try:
            manifest = cls.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, err['loc'])) or '<file>'}: "
                f"{str(err['msg']).removeprefix('Value error, ')}"
                for err in exc.errors()
            ]
            raise InvalidManifest(where=where, problems=problems) from None
        try:
            return manifest, manifest.metadata(), manifest.capabilities()
        except InvalidPluginMetadata as exc:
            problems = [f"{p.field} = {p.value!r}: {p.message}" for p in exc.problems]
            raise InvalidManifest(where=where, problems=problems) from None

    @classmethod
    def of_code(
        cls,
        plugin: object,
        metadata: PluginMetadata,
        capabilities: PluginCapabilities,
        *,
        activation: Activation = "startup",
        hooks: Sequence[str] | None = None,
    ) -> PluginManifest:
        """The manifest that restates an imported plugin and what describing it found.

        ``hooks`` are the plugin's, when describing it already found them.
        """
        return cls(
            name=metadata.name,
            version=metadata.version,
            description=metadata.description,
            author=metadata.author,
            dependencies=metadata.dependencies,
            after_dependencies=metadata.after_dependencies,
            provides_services=capabilities.provides_services,
            event_namespaces=capabilities.event_namespaces,
            commands=capabilities.commands,
            hooks=hook_names(plugin) if hooks is None else hooks,
            config_model=_config_model_path(plugin),
            activation=activation,
        )

    def metadata(self) -> PluginMetadata:
        """The ``PluginMetadata`` this manifest restates (validated the same way)."""
        return PluginMetadata(
            name=self.name,
            version=self.version,
            description=self.description,
            author=self.author,
            dependencies=self.dependencies,
            after_dependencies=self.after_dependencies,
        )

    def capabilities(self) -> PluginCapabilities:
        """The ``PluginCapabilities`` this manifest restates."""
        return PluginCapabilities(
            event_namespaces=self.event_namespaces,
            commands=self.commands,
            provides_services=self.provides_services,
        )

    @property
    def starts_eagerly(self) -> bool:
        """Whether the host starts this plugin at start-up even if it asks to be lazy."""
        return not activates_lazily(self.activation, self.capabilities(), self.hooks)

    def differences(self, code: PluginManifest) -> list[FieldDifference]:
        """Every field (but ``activation``, the author's choice) where ``code`` says otherwise."""
        ours, theirs = self._comparable(), code._comparable()
        return [
            FieldDifference(name, ours[name], theirs[name])
            for name in ours
            if name != "activation" and ours[name] != theirs[name]
        ]

    def _comparable(self) -> dict[str, Any]:
        """Fields as the host reads them: values normalised, lists in any order."""
        metadata, capabilities = self.metadata(), self.capabilities()
        fields = {
            **self.model_dump(mode="json"),
            "version": metadata.version,
            "dependencies": metadata.dependencies,
            "event_namespaces": capabilities.event_namespaces,
            "commands": capabilities.commands,
        }
        return {
            name: sorted(value) if isinstance(value, (list, tuple)) else value
            for name, value in fields.items()
        }

    def to_toml(self) -> str:
        """The file's text: every field, defaults included, so a reader sees them all."""
        lines = [
            f"# {MANIFEST_FILE}: written by `ksi-host manifest`; keep it equal to the code",
            "# (`ksi-host manifest --check`). Format: docs/MANIFEST.md in ksi-host.",
        ]
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                lines.append(f"{name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: str | list[str]) -> str:
    """A TOML basic string or array of them: JSON's escapes are TOML's, but for DEL."""
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def activates_lazily(
    activation: Activation, capabilities: PluginCapabilities, hooks: Sequence[str]
) -> bool:
    """Lazy, and nothing it does needs it running before its own events arrive."""
    return (
        activation == "lazy"
        and not capabilities.routes_everything
        and not any(hook in EAGER_HOOKS for hook in hooks)
    )


def regenerate_command(candidate: Candidate, activation: Activation) -> str:
    """The command that rewrites ``candidate``'s manifest from its code, as a shell line."""
    lazy = " --lazy" if activation == "lazy" else ""
    file = shlex.quote(str(candidate.manifest)) if candidate.manifest else _EXAMPLE_FILE
    return f"ksi-host manifest {shlex.quote(candidate.target)}{lazy} -o {file}"


def _config_model_path(plugin: object) -> str | None:
    model = getattr(type(plugin), "config_model", None)
    if not isinstance(model, type):
        return None
    return f"{model.__module__}:{model.__qualname__}"
