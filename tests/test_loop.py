"""The daemon's event loop: uvloop where it imports, asyncio's own on request or as fallback."""

from __future__ import annotations

import asyncio
import sys

import pytest

from ksi_host._loop import loop_factory, run_on
from ksi_host.errors import MissingExtra


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_the_standard_librarys_loop() -> None:
    assert run_on("asyncio", _loop_module).startswith("asyncio")


def test_auto_takes_uvloop_where_it_is_installed() -> None:
    pytest.importorskip("uvloop", reason="uvloop does not build on this platform")
    assert loop_factory("auto")[0] == "uvloop"
    assert run_on("auto", _loop_module).startswith("uvloop")


def test_without_uvloop_auto_falls_back_and_uvloop_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert loop_factory("auto")[0] == "asyncio"
    with pytest.raises(MissingExtra) as info:
        run_on("uvloop", _loop_module)
    assert info.value.render() == (
        "error[missing-extra]: --loop uvloop needs the 'uvloop' library, which is not installed\n"
        "  where: --loop / KSI_LOOP\n"
        "  hint: run: pip install uvloop (it builds on Linux and macOS with CPython), "
        "or use --loop asyncio"
    )
