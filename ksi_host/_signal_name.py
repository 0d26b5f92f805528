"""How a message names a signal: ``SIGKILL``, or ``signal 99`` where Python knows no name."""

from __future__ import annotations

import signal

__all__ = ["signal_name"]


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
