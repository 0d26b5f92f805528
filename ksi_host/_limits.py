"""The daemon's open-files budget: one descriptor per connection, plus what plugins use.

The kernel's default soft limit (often 1024) would cap a daemon serving agents and tools
well below the connections it is meant to hold, so ``ksi-host run`` raises its soft
``RLIMIT_NOFILE`` toward the hard limit (never above it, and only as far as it needs)
to fit the ``max_connections`` of every transport it serves (the Unix socket, and the
WebSocket transport when enabled), and the default ``max_connections`` is what that
hard limit allows, up to 1000.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Mapping
from typing import Final

__all__ = ["CONNECTIONS_WANTED", "RESERVED_FILES", "default_max_connections", "reserve_files"]

logger: Final = logging.getLogger("ksi_host.limits")

CONNECTIONS_WANTED: Final = 1000
"""The default ``max_connections`` where the hard limit allows it."""

RESERVED_FILES: Final = 64
"""Descriptors kept for everything but connections: the socket, the log, databases, plugins."""


def _hard_limit() -> int | None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return None if hard == resource.RLIM_INFINITY else hard


def default_max_connections() -> int:
    """``CONNECTIONS_WANTED``, or fewer where the hard open-files limit cannot hold them."""
    hard = _hard_limit()
    if hard is None:
        return CONNECTIONS_WANTED
    return max(1, min(CONNECTIONS_WANTED, hard - RESERVED_FILES))


def reserve_files(connections: Mapping[str, int]) -> int:
    """Raise the soft open-files limit to fit each transport's ``max_connections``.

    ``connections`` maps each transport to its ``max_connections``. Returns the limit
    in force; logs what it changed, and warns (with the fix) when the hard limit is too
    low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sum(connections.values()) + RESERVED_FILES
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        logger.info("raised the open-files limit from %d to %d", soft, target)
    if target < needed:
        logger.warning(
            "max_connections = %s needs %d open files, but the hard limit is %d: connections "
            "past about %d will fail. Raise the hard limit (ulimit -Hn, or LimitNOFILE= in a "
            "systemd unit) or lower max_connections in [server]",
            " + ".join(f"{count} ({transport})" for transport, count in connections.items()),
            needed,
            hard,
            max(1, target - RESERVED_FILES),
        )
    return target
