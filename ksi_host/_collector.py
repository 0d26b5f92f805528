"""The cycle collector, paused while a process builds what it keeps: its start-up and its plans.

Importing ksi-host and its libraries, and planning, allocate objects that live as long as
the process (modules, classes, models, every candidate, spec and edge of a plan). The
collector would walk them again and again while they pile up, and free nothing: in a
daemon's start-up, some eighty young collections. So it is off meanwhile; once it is
back on, those objects go straight to the oldest generation (``gc.freeze`` then
``gc.unfreeze``, which moves them without walking them), as the young collections that
come next would only have walked them twice more to put them there. Any garbage among
them (a failed import's cycles) is freed by the next full collection, as long-lived
garbage is. The collector comes back on only if it was on; objects someone else froze
stay frozen.

- :func:`paused` covers one block (a plan: :func:`ksi_host._pipeline.build_plan`);
- :func:`pause_start_up` pauses it from the entry point of ``ksi-host run``
  (:mod:`ksi_host._entry`), and :func:`resume_start_up` resumes it when the daemon's
  own start-up is over, before any plugin code runs (:func:`ksi_host._daemon.run_daemon`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["pause_start_up", "paused", "resume_start_up"]


class _StartUp:
    """Whether :func:`pause_start_up` paused the collector.

    A plain class: a dataclass costs its module half a millisecond to build, at start-up.
    """

    __slots__ = ("paused",)

    def __init__(self) -> None:
        self.paused = False


_START_UP: Final = _StartUp()


def _resume() -> None:
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


@contextmanager
def paused() -> Iterator[None]:
    """No cycle collection in the block; after it (even if it raised), as it was before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _resume()


def pause_start_up() -> None:
    """Pause the collector (if on) until :func:`resume_start_up`."""
    if gc.isenabled():
        gc.disable()
        _START_UP.paused = True


def resume_start_up() -> None:
    """Resume the collector that :func:`pause_start_up` paused; nothing if it paused none."""
    if _START_UP.paused:
        _START_UP.paused = False
        _resume()
