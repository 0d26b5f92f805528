"""Which event loop the daemon runs on: uvloop where it is installed, else asyncio's own.

uvloop (libuv) moves bytes between sockets and callbacks with less Python on the way,
which is most of what a daemon answering small requests does. ``--loop`` (or
``$KSI_LOOP``) chooses: ``auto`` (the default) takes uvloop when it imports, ``uvloop``
insists on it, ``asyncio`` keeps the standard library's loop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from ksi_host._defaults import LoopChoice
from ksi_host.errors import MissingExtra

__all__ = ["loop_factory", "run_on"]

logger: Final = logging.getLogger("ksi_host.daemon")

T = TypeVar("T")


def loop_factory(choice: LoopChoice) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop's name and a function that makes one, as ``choice`` asks."""
    if choice == "asyncio":
        return "asyncio", asyncio.new_event_loop
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise MissingExtra(
                feature="--loop uvloop",
                module="uvloop",
                install="pip install uvloop (it builds on Linux and macOS with CPython), "
                "or use --loop asyncio",
                where="--loop / KSI_LOOP",
            ) from None
        return "asyncio", asyncio.new_event_loop
    new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return "uvloop", new_loop


def run_on(choice: LoopChoice, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())`` on the loop ``choice`` names (checked before ``main`` is made)."""
    name, factory = loop_factory(choice)
    logger.info("event loop: %s", name)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main())
    policy = _FactoryPolicy(factory)  # pragma: no cover - Python 3.10 has no Runner
    asyncio.set_event_loop_policy(policy)
    try:
        return asyncio.run(main())
    finally:
        asyncio.set_event_loop_policy(None)


class _FactoryPolicy(asyncio.DefaultEventLoopPolicy):  # pragma: no cover - Python 3.10
    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        super().__init__()
        self._factory = factory

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return self._factory()
