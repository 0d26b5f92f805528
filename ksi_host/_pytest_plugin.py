"""The pytest plugin ksi-host registers (``pytest11``): the ``ksi_harness`` fixture."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from ksi_host.testing import HarnessFactory, SyncPluginHarness

__all__ = ["ksi_harness"]


@pytest.fixture
def ksi_harness() -> Iterator[HarnessFactory]:
    """``ksi_harness(*plugins, config=None, with_builtins=False)``: a started harness.

    Each harness the test starts is stopped after it, last started first.
    """
    started: list[SyncPluginHarness] = []

    def start(
        *plugins: object,
        config: Mapping[str, Any] | None = None,
        with_builtins: bool = False,
    ) -> SyncPluginHarness:
        harness = SyncPluginHarness(*plugins, config=config, with_builtins=with_builtins)
        harness.start()
        started.append(harness)
        return harness

    yield start
    for harness in reversed(started):
        harness.stop()
