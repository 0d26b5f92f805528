"""Every example of the KSI Plugin Development Guide, run against ``ksi_host``.

The code inside each test is the guide's, with ``ksi_daemon`` renamed to ``ksi_host``.
Where the guide shows a fragment, a comment says what was added to make it run.
Examples that need the event bus, transports or ``context.emit`` are tested with
the issues that build those.
"""

from __future__ import annotations

import importlib.util
import logging
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_manager import PluginManager
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

logger = logging.getLogger(__name__)


class MyPlugin(BasePlugin):
    def __init__(self):
        super().__init__(
            metadata=PluginMetadata(
                name="my_plugin", version="1.0.0", description="My first plugin"
            )
        )

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "hello:world":
            return {"message": "Hello from my plugin!"}


def test_quick_start_minimal_plugin_and_direct_test():
    plugin = MyPlugin()

    manager = PluginManager()
    manager.pm.register(plugin)

    results = manager.pm.hook.ksi_handle_event(event_name="hello:world", data={}, context={})
    assert results == [{"message": "Hello from my plugin!"}]
    assert plugin.name == "my_plugin"
    assert plugin.metadata.version == "1.0.0"
    assert plugin.metadata.description == "My first plugin"


def test_quick_start_other_events_are_ignored():
    manager = PluginManager()
    manager.pm.register(MyPlugin())
    assert manager.pm.hook.ksi_handle_event(event_name="other:event", data={}, context={}) == []


# The guide's command handler uses `datetime` without importing it; imported above.
class HealthCheckPlugin(BasePlugin):
    def __init__(self):
        super().__init__(
            metadata=PluginMetadata(name="health_check", version="1.0.0"),
            capabilities=PluginCapabilities(
                event_namespaces=["/system"], commands=["system:health"]
            ),
        )

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "system:health":
            return {"status": "healthy", "timestamp": datetime.now().isoformat()}


def test_command_handler_plugin():
    manager = PluginManager()
    plugin = HealthCheckPlugin()
    manager.pm.register(plugin)
    [reply] = manager.pm.hook.ksi_handle_event(event_name="system:health", data={}, context={})
    assert reply["status"] == "healthy"
    datetime.fromisoformat(reply["timestamp"])
    assert plugin.capabilities.event_namespaces == ("system",)
    assert plugin.capabilities.commands == ("system:health",)


class DatabasePlugin(BasePlugin):
    def __init__(self):
        super().__init__(
            metadata=PluginMetadata(name="database"),
            capabilities=PluginCapabilities(provides_services=["database"]),
        )
        self.db = {}  # Simple in-memory DB

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "db:get":
            key = data.get("key")
            return {"value": self.db.get(key)}

        elif event_name == "db:set":
            key = data.get("key")
            value = data.get("value")
            self.db[key] = value
            return {"status": "set"}


def test_service_plugin_set_then_get():
    manager = PluginManager()
    plugin = DatabasePlugin()
    manager.pm.register(plugin)
    hook = manager.pm.hook.ksi_handle_event
    assert hook(event_name="db:set", data={"key": "k", "value": [1, 2]}, context={}) == [
        {"status": "set"}
    ]
    assert hook(event_name="db:get", data={"key": "k"}, context={}) == [{"value": [1, 2]}]
    assert hook(event_name="db:get", data={"key": "missing"}, context={}) == [{"value": None}]
    assert plugin.capabilities.provides_services == ("database",)
    assert plugin.metadata.version is None


# The guide's error-handling example calls `self.process` without defining it; the test
# gives the plugin a `process` that raises ValueError on bad input and KeyError on a bug.
class ErrorHandlingPlugin(BasePlugin):
    def __init__(self):
        super().__init__(metadata=PluginMetadata(name="error_handling", version="1.0"))

    def process(self, data):
        if "bug" in data:
            raise KeyError("internal detail that must not leak")
        if not isinstance(data.get("value"), int):
            raise ValueError("value must be an integer")
        return data["value"] * 2

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        try:
            # Process event
            result = self.process(data)
            return {"status": "success", "result": result}

        except ValueError as e:
            # Return error response
            return {"status": "error", "error": {"code": "INVALID_INPUT", "message": str(e)}}
        except Exception as e:
            # Log unexpected errors
            logger.error(f"Unexpected error: {e}")
            return {
                "status": "error",
                "error": {"code": "INTERNAL_ERROR", "message": "An error occurred"},
            }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"value": 21}, {"status": "success", "result": 42}),
        (
            {"value": "x"},
            {
                "status": "error",
                "error": {"code": "INVALID_INPUT", "message": "value must be an integer"},
            },
        ),
        (
            {"bug": True},
            {
                "status": "error",
                "error": {"code": "INTERNAL_ERROR", "message": "An error occurred"},
            },
        ),
    ],
)
def test_error_handling_pattern(data, expected, caplog):
    manager = PluginManager()
    manager.pm.register(ErrorHandlingPlugin())
    assert manager.pm.hook.ksi_handle_event(event_name="x:y", data=data, context={}) == [expected]
    assert ("Unexpected error" in caplog.text) == ("bug" in data)


def test_hook_ordering_tryfirst_and_trylast():
    calls = []

    class Early(BasePlugin):
        def __init__(self):
            super().__init__(metadata=PluginMetadata(name="early"))

        @hookimpl(tryfirst=True)  # Run before other plugins
        def ksi_filter_event(self, event_name, data):
            # Pre-process all events
            data["timestamp"] = datetime.now()
            calls.append("early-filter")
            return data

        @hookimpl(trylast=True)  # Run after other plugins
        def ksi_handle_event(self, event_name, data, context):
            # Clean up after other handlers
            calls.append("late-handler")

    class Plain(BasePlugin):
        def __init__(self):
            super().__init__(metadata=PluginMetadata(name="plain"))

        @hookimpl
        def ksi_filter_event(self, event_name, data):
            calls.append("plain-filter")
            return data

        @hookimpl
        def ksi_handle_event(self, event_name, data, context):
            calls.append("plain-handler")
            return {"ok": True}

    manager = PluginManager()
    # Registered first, so without tryfirst/trylast pluggy would call it last.
    manager.pm.register(Early())
    manager.pm.register(Plain())
    manager.pm.hook.ksi_filter_event(event_name="a:b", data={})
    manager.pm.hook.ksi_handle_event(event_name="a:b", data={}, context={})
    assert calls == ["early-filter", "plain-filter", "plain-handler", "late-handler"]


def test_dependencies_declaration():
    class MyPluginWithDeps(BasePlugin):
        def __init__(self):
            super().__init__(
                metadata=PluginMetadata(
                    name="my_plugin", version="1.0.0", dependencies=["database", "auth"]
                )
            )

        # The guide's snippet declares no hooks; a plugin needs at least one to register.
        @hookimpl
        def ksi_startup(self):
            return {"status": "plugin_started"}

    plugin = MyPluginWithDeps()
    assert plugin.metadata.dependencies == ("database", "auth")
    assert [req.name for req in plugin.metadata.requirements] == ["database", "auth"]
    manager = PluginManager()
    manager.pm.register(plugin)
    assert manager.pm.hook.ksi_startup() == [{"status": "plugin_started"}]


def test_dynamic_plugin_loading_from_a_file(tmp_path: Path):
    path = tmp_path / "plugin.py"
    path.write_text(
        textwrap.dedent(
            '''
            """My first KSI plugin."""

            from ksi_host.plugin_base import BasePlugin, hookimpl
            from ksi_host.plugin_types import PluginMetadata

            class MyPlugin(BasePlugin):
                def __init__(self):
                    super().__init__(
                        metadata=PluginMetadata(
                            name="my_plugin",
                            version="1.0.0",
                            description="My first plugin"
                        )
                    )

                @hookimpl
                def ksi_handle_event(self, event_name, data, context):
                    if event_name == "hello:world":
                        return {"message": "Hello from my plugin!"}

            # Required: Create plugin instance
            plugin = MyPlugin()
            '''
        )
    )
    manager = PluginManager()

    spec = importlib.util.spec_from_file_location("custom_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    manager.pm.register(module.plugin)
    assert manager.pm.hook.ksi_handle_event(event_name="hello:world", data={}, context={}) == [
        {"message": "Hello from my plugin!"}
    ]


# The Testing section's pattern; its plugin answers `processed` for `test:event`.
class ProcessingPlugin(BasePlugin):
    def __init__(self):
        super().__init__(metadata=PluginMetadata(name="processing", version="0.1"))

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "test:event":
            return {"processed": data["value"]}


def test_my_plugin():
    manager = PluginManager()
    plugin = ProcessingPlugin()
    manager.pm.register(plugin)

    # Test event handling
    results = manager.pm.hook.ksi_handle_event(
        event_name="test:event", data={"value": 42}, context={}
    )

    assert len(results) == 1
    assert results[0]["processed"] == 42


def test_available_hooks_all_register():
    class AllHooks(BasePlugin):
        def __init__(self):
            super().__init__(metadata=PluginMetadata(name="all_hooks"))

        @hookimpl
        def ksi_startup(self):
            return {"status": "plugin_started"}

        @hookimpl
        def ksi_shutdown(self):
            return {"status": "plugin_stopped"}

        @hookimpl
        def ksi_plugin_context(self, context):
            self._event_bus = context.get("event_bus")

        @hookimpl
        def ksi_handle_event(self, event_name, data, context):
            if event_name == "my:event":
                return {"handled": True}

        @hookimpl
        def ksi_filter_event(self, event_name, data):
            return data

        @hookimpl
        def ksi_validate_event(self, event_name, data):
            if "required_field" not in data:
                raise ValueError("Missing required field")

        @hookimpl
        def ksi_metrics_collected(self, metrics):
            metrics["my_plugin"] = {"events_handled": 42}
            return metrics

    plugin = AllHooks()
    manager = PluginManager()
    manager.pm.register(plugin)
    hook = manager.pm.hook
    assert hook.ksi_startup() == [{"status": "plugin_started"}]
    assert hook.ksi_shutdown() == [{"status": "plugin_stopped"}]
    hook.ksi_plugin_context(context={"event_bus": "bus"})
    assert plugin._event_bus == "bus"
    assert hook.ksi_handle_event(event_name="my:event", data={}, context={}) == [{"handled": True}]
    assert hook.ksi_filter_event(event_name="a:b", data={"x": 1}) == [{"x": 1}]
    with pytest.raises(ValueError, match="Missing required field"):
        hook.ksi_validate_event(event_name="a:b", data={})
    assert hook.ksi_metrics_collected(metrics={}) == [{"my_plugin": {"events_handled": 42}}]
