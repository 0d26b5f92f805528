"""The cycle collector paused during start-up: back on, as it was, and collecting as ever."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ksi_host._collector import pause_start_up, paused, resume_start_up


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does to the cycle collector, it is back on and unfrozen afterwards."""
    yield
    resume_start_up()
    gc.enable()
    gc.unfreeze()


class _Cycle:
    """Garbage that only the cycle collector frees."""

    def __init__(self) -> None:
        self.me = self


def test_start_up_pauses_the_collector_until_it_is_resumed(collector: None) -> None:
    gc.enable()
    pause_start_up()
    assert not gc.isenabled()
    with paused():  # a plan built during start-up leaves it paused
        pass
    assert not gc.isenabled()
    litter = weakref.ref(_Cycle())
    resume_start_up()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # moved to the oldest generation, not kept from it
    gc.collect()
    assert litter() is None


def test_resuming_what_start_up_did_not_pause_changes_nothing(collector: None) -> None:
    gc.disable()
    pause_start_up()  # already off: not start-up's to turn on again
    resume_start_up()
    assert not gc.isenabled()
    gc.enable()
    resume_start_up()
    assert gc.isenabled()


def test_what_someone_else_froze_stays_frozen(collector: None) -> None:
    gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    pause_start_up()
    resume_start_up()
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
