"""The pytest plugin ksi-host registers (``pytest11``): the ``ksi_harness`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ksi_host.testing import HarnessFactory, harness_factory

__all__ = ["ksi_harness"]


@pytest.fixture
def ksi_harness() -> Iterator[HarnessFactory]:
    """``ksi_harness(*plugins, config=None, with_builtins=False)``: a started harness.

    Each harness the test starts is stopped after it, last started first.
    """
    with harness_factory() as start:
        yield start
