"""What containment costs: an isolated plugin against the same plugin in-process, and the
watchdog and crash record against in-process dispatch without them.

The same plugin answers ``bench:ping`` in a host in-process and, in another host, isolated
in its worker process (``[host] isolated``): round trip is one ``await host.dispatch`` at a
time, throughput is 64 in flight at once (wall clock; the worker's CPU is its own).

The watchdog and the crash record are measured on in-process dispatch (one handler),
where they cost the most relative to the work: a host with the watchdog off
(``watchdog_threshold = 0``) and one with it on (``0.5``, the default), both running, and
the crash record attached to a file as the daemon does (:func:`ksi_host._crash_record.attach`)
or not. Three cases (both off; the record only; both on, the daemon's default) take turns
in blocks of ``BLOCK`` events, in a rotating order, ``ROUNDS`` times; each block is timed in
CPU time of the whole process (the watchdog thread's included), which load on a shared
machine distorts far less than the wall clock. Each case's cost is the median, over the
rounds, of its block's time divided by the same round's "both off" block: blocks next to
each other ran under the same load.
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

from ksi_host import _crash_record as crash_record
from ksi_host._config import HostConfig, HostSection
from ksi_host._lifecycle import Host
from ksi_host._pipeline import build_plan

REPEATS = 7
ROUND_TRIPS = 2_000
IN_FLIGHT = 64
BATCHES = 20
ROUNDS = 150
BLOCK = 2_000
WARM_UP = 5_000

PLUGIN = """
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Ping(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"pong": True}


plugin = Ping(PluginMetadata(name="ping"), PluginCapabilities(event_namespaces=["bench"]))
"""

OFF = HostSection(watchdog_threshold=0)
WATCHED = HostSection(watchdog_threshold=0.5)
CASES = ("off", "record", "watchdog + record")


def _plan(folder: Path, host: HostSection) -> Any:
    path = folder / "ping.py"
    path.write_text(PLUGIN)
    env = {
        "HOME": str(folder),
        "KSI_HOME": str(folder / ".ksi"),
        "KSI_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    return build_plan(paths=[path], env=env, builtin_package=None, host=host)


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


async def _isolation_samples(folder: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    hosts = {
        "in-process": Host(_plan(folder, OFF), HostConfig(host=OFF)),
        "isolated": Host(_plan(folder, HostSection(isolated=["ping"])), HostConfig(host=OFF)),
    }
    async with AsyncExitStack() as stack:
        for label, host in hosts.items():
            await stack.enter_async_context(host)
            assert await host.dispatch("bench:ping", {}) == {"pong": True}, label
        for _ in range(REPEATS):
            for label, host in hosts.items():
                events = ROUND_TRIPS * (10 if label == "in-process" else 1)
                samples.setdefault(f"{label} round trip", []).append(
                    await _round_trip(host, events)
                )
                samples.setdefault(f"{label} throughput", []).append(await _throughput(host))
    return samples


async def _block_cpu_ns(host: Host, record: Path | None) -> float:
    """CPU nanoseconds per dispatch over one block, the crash record attached or not."""
    if record is not None:
        crash_record.attach(record)
    try:
        data: dict[str, Any] = {}
        start = time.process_time_ns()
        for index in range(BLOCK):
            await host.dispatch("bench:ping", data)
            if index % 100 == 0:
                await asyncio.sleep(0)
        return (time.process_time_ns() - start) / BLOCK
    finally:
        crash_record.detach()


async def _dispatch_samples(folder: Path) -> dict[str, list[float]]:
    """Per case, each round's block time; and per case, its ratios to the round's floor."""
    record = folder / "ksi.sock.running"
    plan = _plan(folder, OFF)
    async with (
        Host(plan, HostConfig(host=OFF)) as plain,
        Host(plan, HostConfig(host=WATCHED)) as watched,
    ):
        runs = {
            "off": (plain, None),
            "record": (plain, record),
            "watchdog + record": (watched, record),
        }
        for host, attached in runs.values():
            for _ in range(WARM_UP // BLOCK + 1):
                await _block_cpu_ns(host, attached)
        samples: dict[str, list[float]] = {}
        for round_ in range(ROUNDS):
            turn = CASES[round_ % len(CASES) :] + CASES[: round_ % len(CASES)]
            times = {label: await _block_cpu_ns(*runs[label]) for label in turn}
            for label in CASES:
                samples.setdefault(label, []).append(times[label])
                samples.setdefault(f"{label} ratio", []).append(times[label] / times["off"])
    return samples


def run() -> list[str]:
    """The containment section: isolated vs in-process, and the watchdog's and record's cost."""
    with tempfile.TemporaryDirectory(prefix="ksi-bench-") as tmp:
        samples = asyncio.run(_isolation_samples(Path(tmp)))
        samples.update(asyncio.run(_dispatch_samples(Path(tmp))))
    medians = {k: statistics.median(v) for k, v in samples.items()}
    trip, iso_trip = medians["in-process round trip"], medians["isolated round trip"]
    rate, iso_rate = medians["in-process throughput"], medians["isolated throughput"]
    off = medians["off"]
    rows = [
        ("round trip, in-process (floor)", f"{trip:.1f} µs", "1.00x"),
        ("round trip, isolated", f"{iso_trip:.1f} µs", ratio(iso_trip, trip)),
        ("throughput, in-process (floor)", f"{rate:,.0f} /s", "1.00x"),
        ("throughput, isolated", f"{iso_rate:,.0f} /s", ratio(iso_rate, rate)),
        ("dispatch CPU, watchdog and crash record off (floor)", f"{off:,.0f} ns", "1.00x"),
        (
            "dispatch CPU, crash record on",
            f"{medians['record']:,.0f} ns",
            f"{medians['record ratio']:.3f}x",
        ),
        (
            "dispatch CPU, watchdog and crash record on (the daemon's default)",
            f"{medians['watchdog + record']:,.0f} ns",
            f"{medians['watchdog + record ratio']:.3f}x",
        ),
    ]
    return section(
        "Containment (`tests/benchmarks/bench_containment.py`)",
        "The same one-line plugin answering `bench:ping` in-process and isolated in its worker "
        "process (`[host] isolated`): round trip is one `await host.dispatch` at a time, "
        f"throughput {IN_FLIGHT} in flight at once, medians of {REPEATS} interleaved repeats "
        "(wall clock). Then in-process dispatch (one handler) with the watchdog "
        "(`watchdog_threshold = 0.5`, the default) and the crash record on, which must cost "
        "under 5%, against both off: CPU time of the whole process per event (the watchdog "
        f"thread's included), blocks of {BLOCK:,} events of the three cases in turn, "
        f"{ROUNDS} rounds; a ratio is the median of each round's block against the same "
        "round's floor block.",
        table(["case", "median", "vs floor"], rows),
    )


if __name__ == "__main__":
    print("\n".join(run()))
