"""Shared fixtures; also turns pytest's "no tests ran" (exit 5) into a failure."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
