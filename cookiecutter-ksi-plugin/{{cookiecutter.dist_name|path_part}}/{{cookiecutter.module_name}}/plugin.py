"""The plugin ksi-host loads: it declares its events and routes them to ``handlers``."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from ksi_host import (
    BasePlugin,
    ErrorCode,
    PluginCapabilities,
    PluginMetadata,
    error_reply,
    hookimpl,
)
from pydantic import BaseModel, ValidationError

from {{ cookiecutter.module_name }} import __version__
from {{ cookiecutter.module_name }}.handlers import HANDLERS
from {{ cookiecutter.module_name }}.models import Settings
from {{ cookiecutter.module_name }}.utils import success_reply, validation_message

__all__ = [
    "NAMESPACE",
    "PLUGIN_NAME",
    "{{ cookiecutter.module_name|class_name }}",
    "plugin",
]

logger = logging.getLogger(__name__)

PLUGIN_NAME: Final = {{ cookiecutter.plugin_name|py_str }}
NAMESPACE: Final = {{ cookiecutter.namespace|py_str }}


class {{ cookiecutter.module_name|class_name }}(BasePlugin):
    """Answers ``<namespace>:<action>`` for every action in ``HANDLERS``; ignores other events."""

    config_model: ClassVar[type[BaseModel] | None] = Settings
    """So ``ksi-host doctor`` and the host check the config section before startup."""

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
                commands=[f"{NAMESPACE}:{action}" for action in HANDLERS],
            ),
        )
        self.settings = Settings()
        self.handled: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    @hookimpl
    def ksi_plugin_context(self, context: dict[str, Any]) -> None:
        """Read this plugin's config section; a bad section stops the plugin, not the host."""
        config = context.get("config")
        section = config.get(PLUGIN_NAME, {}) if isinstance(config, Mapping) else {}
        self.settings = Settings.model_validate(section)

    @hookimpl
    def ksi_handle_event(
        self, event_name: str, data: dict[str, Any], context: Any
    ) -> dict[str, Any] | None:
        namespace, _, action = event_name.partition(":")
        handler = HANDLERS.get(action) if namespace == NAMESPACE else None
        if handler is None:
            return None
        try:
            result = handler(data, self.settings)
        except ValidationError as exc:
            self.errors[action] += 1
            return error_reply(ErrorCode.INVALID_INPUT, validation_message(exc), plugin=PLUGIN_NAME)
        except Exception:
            self.errors[action] += 1
            logger.exception("%s failed to handle %s", PLUGIN_NAME, event_name)
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


plugin = {{ cookiecutter.module_name|class_name }}()
"""The instance ksi-host registers (the ``ksi.plugins`` entry point points here)."""
