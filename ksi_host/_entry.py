"""The ``ksi-host`` command's entry point: a kept answer first, else the command line.

Nothing but the standard library is imported before :mod:`ksi_host._answer_cache` has
said whether a kept answer is still valid; click, pydantic and the stages load only
when the command must really run (see docs/OPERATING.md, "Kept answers").
"""

from __future__ import annotations

import sys

from ksi_host import _answer_cache

__all__ = ["main"]


def main() -> None:
    """Console-script entry point (``ksi-host``, ``python -m ksi_host``)."""
    argv = sys.argv[1:]
    code = _answer_cache.serve(argv)
    if code is not None:
        raise SystemExit(code)
    with _answer_cache.recording(argv):
        from ksi_host._cli import main as run

        run()
