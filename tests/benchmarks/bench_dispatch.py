"""ns per event: a bare pluggy call (the floor) against ``host.dispatch`` with 1, 100, 1000 plugins.

One plugin handles ``bench:ping``; the others declare namespaces of their own, so
routing should keep dispatch flat in the number of plugins. For scale, the run also
times pluggy broadcasting to 100 implementations, which is what routing avoids, and
the 1-plugin host with tracing on (``KSI_TRACE=1``), its lines formatted and written
to ``/dev/null``. Samples of every case are interleaved, so load on a shared machine
hits them alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from types import MappingProxyType
from typing import Any

from report import ratio, section, table

from ksi_host._lifecycle import Host
from ksi_host._plan import LoadPlan, Origin, PluginSpec
from ksi_host._trace import TRACE_LOGGER, TraceSettings
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_manager import PluginManager
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

EVENTS = 20_000
REPEATS = 7
SIZES = (1, 100, 1000)
FLOOR = "pluggy call, 1 impl (floor)"
BROADCAST = "pluggy call, 100 impls"
TRACED = "host.dispatch, 1 plugins, traced"


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
    origin = Origin("path", "bench")
    specs = tuple(
        PluginSpec(plugin=p, metadata=p.metadata, capabilities=p.capabilities, origin=origin)
        for p in map(_plugin, range(size))
    )
    return LoadPlan(order=specs, requires=MappingProxyType({}))


def _pluggy(size: int) -> Any:
    manager = PluginManager()
    for index in range(size):
        manager.pm.register(_plugin(index))
    return manager.pm.hook.ksi_handle_event


def _time_pluggy(hook: Any, events: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(events):
        hook(event_name="bench:ping", data={}, context=None)
    return (time.perf_counter_ns() - start) / events


async def _time_dispatch(host: Host) -> float:
    data: dict[str, Any] = {}
    start = time.perf_counter_ns()
    for _ in range(EVENTS):
        await host.dispatch("bench:ping", data)
    return (time.perf_counter_ns() - start) / EVENTS


@contextmanager
def _trace_to_devnull() -> Iterator[None]:
    """Trace lines formatted as ``ksi-host run`` formats them, written to /dev/null."""
    handler = logging.FileHandler(os.devnull)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    TRACE_LOGGER.addHandler(handler)
    TRACE_LOGGER.propagate = False
    try:
        yield
    finally:
        TRACE_LOGGER.propagate = True
        TRACE_LOGGER.removeHandler(handler)
        handler.close()


async def _samples() -> dict[str, list[float]]:
    floor, broadcast = _pluggy(1), _pluggy(100)
    samples: dict[str, list[float]] = {FLOOR: [], BROADCAST: []}
    async with AsyncExitStack() as stack:
        hosts = {}
        for size in SIZES:
            host = await stack.enter_async_context(Host(_plan(size), trace=TraceSettings()))
            assert await host.dispatch("bench:ping", {}) == {"pong": True}
            hosts[f"host.dispatch, {size} plugins"] = host
        stack.enter_context(_trace_to_devnull())
        traced = Host(_plan(1), trace=TraceSettings(enabled=True))
        hosts[TRACED] = await stack.enter_async_context(traced)
        for _ in range(REPEATS):
            samples[FLOOR].append(_time_pluggy(floor, EVENTS))
            samples[BROADCAST].append(_time_pluggy(broadcast, EVENTS // 10))
            for label, host in hosts.items():
                samples.setdefault(label, []).append(await _time_dispatch(host))
    return samples


def run() -> list[str]:
    """The dispatch section: ns per event and the ratio to one bare pluggy call."""
    medians = {label: statistics.median(s) for label, s in asyncio.run(_samples()).items()}
    base = medians[FLOOR]
    rows = [(label, f"{value:.0f}", ratio(value, base)) for label, value in medians.items()]
    return section(
        "Dispatch (`tests/benchmarks/bench_dispatch.py`)",
        "Nanoseconds per event: a bare pluggy call with one implementation (the floor) and "
        '`await host.dispatch("bench:ping", data)` with 1, 100 and 1000 plugins installed, one '
        "of which handles the event while the others declare namespaces of their own, and the "
        "1-plugin host with tracing on (three trace lines per event, formatted as `ksi-host "
        "run` does and written to /dev/null; tracing off is the plain 1-plugin row). Medians "
        f"of {REPEATS} interleaved repeats of {EVENTS} events.",
        table(["case", "ns/event", "vs floor"], rows),
    )


if __name__ == "__main__":
    print("\n".join(run()))
