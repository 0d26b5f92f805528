"""The ``ksi-host`` command's entry point: a kept answer first, else the command line.

For ``ksi-host plugins``, nothing but the standard library is imported before
:mod:`ksi_host._answer_cache` has said whether a kept answer is still valid; click,
pydantic and the stages load only when the command must really run (see
docs/OPERATING.md, "Kept answers of `ksi-host plugins`"). Other commands pay nothing
for it.
"""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["KEPT_COMMAND", "main"]

KEPT_COMMAND: Final = "plugins"
"""The command whose answers are kept."""


def main() -> None:
    """Console-script entry point (``ksi-host``, ``python -m ksi_host``)."""
    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        from ksi_host._collector import pause_start_up

        pause_start_up()  # until the daemon has imported and planned: see _collector
    if argv[:1] != [KEPT_COMMAND]:
        _run()
        return
    from ksi_host import _answer_cache

    code = _answer_cache.serve(argv)
    if code is not None:
        raise SystemExit(code)
    with _answer_cache.recording(argv):
        _run()


def _run() -> None:
    from ksi_host._cli import main as run

    run()
