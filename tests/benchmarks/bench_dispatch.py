"""ns per event: a bare pluggy call (the floor) against ``host.dispatch`` with 1, 100, 1000 plugins.

One plugin handles ``bench:ping``; the others declare namespaces of their own, so
routing should keep dispatch flat in the number of plugins.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ksi_host._lifecycle import Host
from ksi_host._plan import LoadPlan, Origin, PluginSpec
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_manager import PluginManager
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

EVENTS = 20_000
REPEATS = 7
SIZES = (1, 100, 1000)


class Handler(BasePlugin):
    """Answers ``bench:ping``, as the guide's command handler does."""

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        if event_name == "bench:ping":
            return {"pong": True}
        return None


def _plugin(index: int) -> Handler:
    namespace = "bench" if index == 0 else f"other{index}"
    return Handler(
        PluginMetadata(name=f"p{index}"),
        PluginCapabilities(event_namespaces=[namespace]),
    )


def _plan(size: int) -> LoadPlan:
    specs = tuple(
        PluginSpec(
            plugin=p,
            metadata=p.metadata,
            capabilities=p.capabilities,
            origin=Origin("path", "bench"),
        )
        for p in map(_plugin, range(size))
    )
    return LoadPlan(order=specs, requires=MappingProxyType({}))


def floor() -> float:
    """ns per call of ``pm.hook.ksi_handle_event`` with one implementation."""
    manager = PluginManager()
    manager.pm.register(_plugin(0))
    hook = manager.pm.hook.ksi_handle_event
    start = time.perf_counter_ns()
    for _ in range(EVENTS):
        hook(event_name="bench:ping", data={}, context=None)
    return (time.perf_counter_ns() - start) / EVENTS


async def _dispatch(host: Host) -> float:
    data: dict[str, Any] = {}
    start = time.perf_counter_ns()
    for _ in range(EVENTS):
        await host.dispatch("bench:ping", data)
    return (time.perf_counter_ns() - start) / EVENTS


def dispatch(size: int) -> list[float]:
    """ns per ``await host.dispatch(...)`` with ``size`` plugins, one per repeat."""

    async def main() -> list[float]:
        async with Host(_plan(size)) as host:
            assert await host.dispatch("bench:ping", {}) == {"pong": True}
            return [await _dispatch(host) for _ in range(REPEATS)]

    return asyncio.run(main())


def run() -> dict[str, float]:
    """Print medians and ratios to the floor; return the medians by label."""
    medians = {"pluggy floor (1 impl)": statistics.median(floor() for _ in range(REPEATS))}
    for size in SIZES:
        medians[f"host.dispatch, {size} plugins"] = statistics.median(dispatch(size))
    base = medians["pluggy floor (1 impl)"]
    print(f"dispatch: {EVENTS} events x {REPEATS} repeats, median ns/event")
    for label, value in medians.items():
        print(f"  {label:<28} {value:8.0f} ns  {value / base:5.2f}x floor")
    return medians


if __name__ == "__main__":
    run()
