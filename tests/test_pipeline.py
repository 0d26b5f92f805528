"""The pipeline's own rules, apart from its stages (each tested in its module's tests)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksi_host._pipeline import build_plan
from ksi_host._plan import Candidate
from ksi_host._report import NullReporter
from ksi_host.errors import ConfigError


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does to the cycle collector, it is back on and unfrozen afterwards."""
    yield
    gc.enable()
    gc.unfreeze()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A home with one plugin file and no entry points: a plan that takes no time."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "watched.py").write_text("plugin = None\n")
    return {"KSI_HOME": str(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}


class _Cycle:
    """Garbage that only the cycle collector frees."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_off_while_planning_and_as_it_was_after(
    env: dict[str, str], collector: None, enabled: bool
) -> None:
    """Planning keeps what it allocates: collecting while it runs costs time and frees nothing."""
    seen: list[bool] = []

    class Watching(NullReporter):
        def found(self, candidate: Candidate) -> None:
            seen.append(gc.isenabled())

    (gc.enable if enabled else gc.disable)()
    build_plan(env=env, builtin_package=None, reporter=Watching())
    assert seen == [False]
    assert gc.isenabled() is enabled
    with pytest.raises(ConfigError):
        build_plan(env=env, disabled=["not a name!"], builtin_package=None)
    assert gc.isenabled() is enabled


def test_garbage_made_while_planning_is_collected_as_ever_after_it(
    env: dict[str, str], collector: None
) -> None:
    """Nothing planning leaves behind is kept from the collector (a failed import's cycles)."""
    gone: list[weakref.ref[_Cycle]] = []

    class Littering(NullReporter):
        def found(self, candidate: Candidate) -> None:
            gone.append(weakref.ref(_Cycle()))

    build_plan(env=env, builtin_package=None, reporter=Littering())
    assert gc.get_freeze_count() == 0  # moved to the oldest generation, not kept from it
    gc.collect()
    assert gone[0]() is None


def test_what_someone_else_froze_stays_frozen(env: dict[str, str], collector: None) -> None:
    """Planning neither unfreezes what someone else froze nor freezes what it made.

    Frozen objects are the ones the collector no longer tracks in its generations, so a
    sentinel's presence there says whether it is frozen. (The freeze count cannot say it:
    a frozen object still dies when nothing refers to it, as caches planning replaces do.)
    """
    sentinel: list[object] = []
    gc.freeze()
    assert not any(tracked is sentinel for tracked in gc.get_objects())
    frozen = gc.get_freeze_count()
    plan = build_plan(env=env, builtin_package=None)
    assert not any(tracked is sentinel for tracked in gc.get_objects())
    assert any(tracked is plan for tracked in gc.get_objects())  # what it made is not frozen
    assert 0 < gc.get_freeze_count() <= frozen
