"""Defaults that ``--help`` shows, in a module that imports nothing.

The CLI imports what a command needs only when that command runs; the values its
options show must therefore live apart from the modules that use them.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LOCK_FILE",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MAX_REPLY_BUFFER_BYTES",
    "DOCTOR_IMPORT_TIMEOUT",
    "GRAPH_FORMATS",
    "HISTORY_BYTES",
    "HISTORY_SIZE",
    "LOG_BACKUPS",
    "LOG_FORMATS",
    "LOG_MAX_BYTES",
    "LOOP_CHOICES",
    "RELOAD_TIMEOUT",
    "REQUEST_TIMEOUT",
    "STOP_TIMEOUT",
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

STOP_TIMEOUT: Final = 30.0
"""Seconds ``ksi-host stop`` waits for the daemon to drain and stop."""

LOG_FORMATS: Final = ("text", "json")
"""What ``ksi-host run --log-format`` accepts."""

LOG_MAX_BYTES: Final = 10 * 1024 * 1024
"""Size at which ``ksi-host run --log-file`` is rotated."""

LOG_BACKUPS: Final = 5
"""Rotated log files ``ksi-host run --log-file`` keeps."""

GRAPH_FORMATS: Final = ("text", "dot", "mermaid")
"""What ``ksi-host plugins --graph --format`` accepts."""

LoopChoice = Literal["auto", "uvloop", "asyncio"]
LOOP_CHOICES: Final[tuple[LoopChoice, ...]] = ("auto", "uvloop", "asyncio")
"""``ksi-host run --loop``: see :mod:`ksi_host._loop`."""

HISTORY_SIZE: Final = 1000
"""``[host] history_size``: events the history keeps at most."""

HISTORY_BYTES: Final = 4 * 1024 * 1024
"""``[host] history_bytes``: bytes of event data (as JSON) the history keeps at most."""

DEFAULT_MAX_LINE_BYTES: Final = 1024 * 1024
"""``[server] max_line_bytes``: the longest request line; clients read replies up to 4x it."""

DEFAULT_MAX_INFLIGHT: Final = 32
"""``[server] max_inflight``: requests of one connection that run at once."""

DEFAULT_MAX_REPLY_BUFFER_BYTES: Final = 4 * 1024 * 1024
"""``[server] max_reply_buffer_bytes``: replies waiting for one client to read them."""

DEFAULT_IDLE_TIMEOUT: Final = 300.0
"""``[server] idle_timeout``: seconds a silent connection stays open."""

DEFAULT_DRAIN_TIMEOUT: Final = 10.0
"""``[server] drain_timeout``: seconds a stopping server lets requests in flight finish."""
