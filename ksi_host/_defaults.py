"""Defaults that ``--help`` shows, in a module that imports nothing.

The CLI imports what a command needs only when that command runs; the values its
options show must therefore live apart from the modules that use them.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "DEFAULT_LOCK_FILE",
    "DOCTOR_IMPORT_TIMEOUT",
    "HISTORY_BYTES",
    "HISTORY_SIZE",
    "LOOP_CHOICES",
    "RELOAD_TIMEOUT",
    "REQUEST_TIMEOUT",
    "LoopChoice",
]

REQUEST_TIMEOUT: Final = 10.0
"""Seconds ``ksi-host send`` (and :func:`ksi_host._client.request`) waits for a reply."""

DOCTOR_IMPORT_TIMEOUT: Final = 10.0
"""Seconds ``ksi-host doctor`` gives one plugin to import before it counts as hung."""

RELOAD_TIMEOUT: Final = 120.0
"""Seconds ``ksi-host reload``/``load`` wait: a reload imports and starts plugins."""

DEFAULT_LOCK_FILE: Final = "ksi-plugins.lock"
"""The file ``ksi-host lock`` writes unless told otherwise."""

LoopChoice = Literal["auto", "uvloop", "asyncio"]
LOOP_CHOICES: Final[tuple[LoopChoice, ...]] = ("auto", "uvloop", "asyncio")
"""``ksi-host run --loop``: see :mod:`ksi_host._loop`."""

HISTORY_SIZE: Final = 1000
"""``[host] history_size``: events the history keeps at most."""

HISTORY_BYTES: Final = 4 * 1024 * 1024
"""``[host] history_bytes``: bytes of event data (as JSON) the history keeps at most."""
