"""The plugin ksi-host loads: it declares its events, checks their data, routes them to handlers."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Final

from ksi_host import (
    BasePlugin,
    ErrorCode,
    PluginCapabilities,
    PluginContext,
    PluginMetadata,
    error_reply,
    hookimpl,
)
from pydantic import BaseModel, ValidationError

from {{ cookiecutter.module_name }} import __version__
from {{ cookiecutter.module_name }}.handlers import COMMANDS, Command
from {{ cookiecutter.module_name }}.models import Settings
from {{ cookiecutter.module_name }}.utils import success_reply, validation_message

__all__ = [
    "NAMESPACE",
    "PLUGIN_NAME",
    "{{ cookiecutter.module_name|class_name }}",
    "plugin",
]

PLUGIN_NAME: Final = {{ cookiecutter.plugin_name|py_str }}
NAMESPACE: Final = {{ cookiecutter.namespace|py_str }}


class {{ cookiecutter.module_name|class_name }}(BasePlugin):
    """Answers ``<namespace>:<action>`` for every action in ``COMMANDS``; ignores other events."""

    config_model: ClassVar[type[BaseModel] | None] = Settings
    """The host validates this plugin's config section with it before startup."""

    def __init__(self) -> None:
        super().__init__(
            metadata=PluginMetadata(
                name=PLUGIN_NAME,
                version=__version__,
                description={{ cookiecutter.description|py_str }},
                author={{ cookiecutter.author|py_str }},
            ),
            capabilities=PluginCapabilities(
                event_namespaces=[NAMESPACE],
                commands=[f"{NAMESPACE}:{action}" for action in COMMANDS],
            ),
        )
        self.handled: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    @hookimpl
    def ksi_validate_event(self, event_name: str, data: dict[str, Any]) -> None:
        """Refuse bad data before any handler runs; the sender gets INVALID_INPUT and why."""
        action, command = _command(event_name)
        if command is None:
            return
        try:
            command.request.model_validate(data)
        except ValidationError as exc:
            self.errors[action] += 1
            raise ValueError(validation_message(exc)) from None

    @hookimpl
    def ksi_handle_event(
        self, event_name: str, data: dict[str, Any], context: PluginContext[Settings]
    ) -> dict[str, Any] | None:
        """Answer with the command's result; ``context.settings`` is this plugin's config."""
        action, command = _command(event_name)
        if command is None:
            return None
        try:
            result = command.handle(command.request.model_validate(data), context.settings)
        except Exception:
            self.errors[action] += 1
            context.logger.exception("%s failed to handle %s", PLUGIN_NAME, event_name)
            return error_reply(
                ErrorCode.INTERNAL_ERROR,
                f"{event_name} failed; the host's log has why",
                plugin=PLUGIN_NAME,
            )
        self.handled[action] += 1
        return success_reply(result)

    @hookimpl
    def ksi_metrics_collected(self, metrics: dict[str, Any]) -> dict[str, Any]:
        metrics[PLUGIN_NAME] = {"events_handled": dict(self.handled), "errors": dict(self.errors)}
        return metrics


def _command(event_name: str) -> tuple[str, Command[Any] | None]:
    """The action of one of this plugin's events and its command, or ``None`` for others."""
    namespace, _, action = event_name.partition(":")
    return action, COMMANDS.get(action) if namespace == NAMESPACE else None


plugin = {{ cookiecutter.module_name|class_name }}()
"""The instance ksi-host registers (the ``ksi.plugins`` entry point points here)."""
