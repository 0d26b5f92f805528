"""``__all__`` of every public module is complete and sorted."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = [
    "ksi_host",
    "ksi_host.errors",
    "ksi_host.events",
    "ksi_host.hookspecs",
    "ksi_host.plugin_base",
    "ksi_host.plugin_manager",
    "ksi_host.plugin_types",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_sorted_and_complete(name):
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    assert defined - {
        "ksi_startup",
        "ksi_shutdown",
        "ksi_plugin_context",
        "ksi_handle_event",
        "ksi_filter_event",
        "ksi_validate_event",
        "ksi_metrics_collected",
    } <= set(exported)
    for attr in exported:
        assert hasattr(module, attr)
