"""What containment costs: an isolated plugin against the same plugin in-process, and the watchdog.

The same plugin answers ``bench:ping`` in a host in-process and, in another host, isolated
in its worker process (``[host] isolated``): round trip is one ``await host.dispatch`` at a
time, throughput is 64 in flight at once. The watchdog is measured as in-process dispatch
with ``watchdog_threshold = 0.5`` (the default) against ``0`` (off). Samples of the cases
are interleaved, so load on a shared machine hits them alike.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from report import ratio, section, table

from ksi_host._config import HostConfig, HostSection
from ksi_host._lifecycle import Host
from ksi_host._pipeline import build_plan

REPEATS = 7
ROUND_TRIPS = 2_000
IN_FLIGHT = 64
BATCHES = 20
DISPATCHES = 10_000

PLUGIN = """
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Ping(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"pong": True}


plugin = Ping(PluginMetadata(name="ping"), PluginCapabilities(event_namespaces=["bench"]))
"""


def _hosts(folder: Path) -> dict[str, Host]:
    path = folder / "ping.py"
    path.write_text(PLUGIN)
    env = {
        "HOME": str(folder),
        "KSI_HOME": str(folder / ".ksi"),
        "KSI_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    off = HostSection(watchdog_threshold=0)

    def plan(host: HostSection) -> Any:
        return build_plan(paths=[path], env=env, builtin_package=None, host=host)

    return {
        "in-process": Host(plan(off), HostConfig(host=off)),
        "isolated": Host(plan(HostSection(isolated=["ping"])), HostConfig(host=off)),
        "watchdog on": Host(plan(off), HostConfig(host=HostSection(watchdog_threshold=0.5))),
        "watchdog off": Host(plan(off), HostConfig(host=off)),
    }


async def _round_trip(host: Host, events: int) -> float:
    """Microseconds per event, one at a time; the loop gets a turn every 100 (as a server's)."""
    data: dict[str, Any] = {}
    start = time.perf_counter_ns()
    for index in range(events):
        await host.dispatch("bench:ping", data)
        if index % 100 == 0:
            await asyncio.sleep(0)
    return (time.perf_counter_ns() - start) / events / 1000


async def _throughput(host: Host) -> float:
    """Events per second with IN_FLIGHT dispatches at once."""
    start = time.perf_counter()
    for _ in range(BATCHES):
        await asyncio.gather(*(host.dispatch("bench:ping", {}) for _ in range(IN_FLIGHT)))
    return BATCHES * IN_FLIGHT / (time.perf_counter() - start)


async def _dispatch_ns(host: Host) -> float:
    return await _round_trip(host, DISPATCHES) * 1000


async def _samples(folder: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    async with AsyncExitStack() as stack:
        hosts = {}
        for label, host in _hosts(folder).items():
            hosts[label] = await stack.enter_async_context(host)
            assert await host.dispatch("bench:ping", {}) == {"pong": True}, label
        for _ in range(REPEATS):
            for label in ("in-process", "isolated"):
                host = hosts[label]
                events = ROUND_TRIPS * (10 if label == "in-process" else 1)
                samples.setdefault(f"{label} round trip", []).append(
                    await _round_trip(host, events)
                )
                samples.setdefault(f"{label} throughput", []).append(await _throughput(host))
            for repeat in range(3):  # alternating, so neither side always runs first
                pair = ("watchdog off", "watchdog on")
                for label in pair if repeat % 2 else reversed(pair):
                    samples.setdefault(label, []).append(await _dispatch_ns(hosts[label]))
    return samples


def run() -> list[str]:
    """The containment section: isolated vs in-process, and the watchdog's cost."""
    with tempfile.TemporaryDirectory(prefix="ksi-bench-") as tmp:
        medians = {k: statistics.median(v) for k, v in asyncio.run(_samples(Path(tmp))).items()}
    trip, iso_trip = medians["in-process round trip"], medians["isolated round trip"]
    rate, iso_rate = medians["in-process throughput"], medians["isolated throughput"]
    off, on = medians["watchdog off"], medians["watchdog on"]
    rows = [
        ("round trip, in-process (floor)", f"{trip:.1f} µs", "1.00x"),
        ("round trip, isolated", f"{iso_trip:.1f} µs", ratio(iso_trip, trip)),
        ("throughput, in-process (floor)", f"{rate:,.0f} /s", "1.00x"),
        ("throughput, isolated", f"{iso_rate:,.0f} /s", ratio(iso_rate, rate)),
        ("dispatch, watchdog off (floor)", f"{off:.0f} ns", "1.00x"),
        ("dispatch, watchdog on", f"{on:.0f} ns", ratio(on, off)),
    ]
    return section(
        "Containment (`tests/benchmarks/bench_containment.py`)",
        "The same one-line plugin answering `bench:ping` in-process and isolated in its worker "
        "process (`[host] isolated`): round trip is one `await host.dispatch` at a time, "
        f"throughput {IN_FLIGHT} in flight at once; and in-process dispatch with the watchdog "
        "on (`watchdog_threshold = 0.5`, the default) against off (`0`), which must stay "
        f"within 5%. Medians of {REPEATS} interleaved repeats.",
        table(["case", "median", "vs floor"], rows),
    )


if __name__ == "__main__":
    print("\n".join(run()))
