"""The WebSocket transport: its config and token (no extra needed), server and client.

``config`` imports without the ``websockets`` library, so the built-in plugin loads
and can say which ``pip install`` is missing; ``server`` and ``client`` need it
(``pip install "ksi-host[websocket]"``).
"""

from __future__ import annotations

__all__: list[str] = []
