"""What ``async with`` means for a part that starts and stops: start on entry, stop on exit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TypeVar

__all__ = ["Running"]

_R = TypeVar("_R", bound="Running")


class Running(ABC):
    """``async with part:`` awaits ``start()``, then ``stop()`` however the block ends."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self: _R) -> _R:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
