"""Cold start with N installed plugins: whole processes, the floor and two peers side by side.

Every row is a fresh interpreter timed from outside (start-up included), over the same
N installed distributions (real ``.dist-info`` folders on ``PYTHONPATH``, each plugin a
package depending on the previous one). The floor scans ``entry_points(group=
"ksi.plugins")`` and imports every plugin module; the peers are pluggy's
``load_setuptools_entrypoints`` and stevedore's ``ExtensionManager`` (and its
one-named-plugin ``DriverManager``). ksi-host runs as a user runs it: ``ksi-host
plugins --json`` and the daemon from start to its first reply, without manifests and
with an all-lazy ``ksi-plugin.toml`` in every plugin.
Run it alone with ``python tests/benchmarks/bench_discovery.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from report import ratio, section, table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.dists import install_dist, plugin_source

SIZES = (100, 1000)
REPEATS = 5
WARM_UPS = 2
"""Rounds before the measured ones. Nothing changed in the last two seconds is kept
(docs/OPERATING.md), and ``plugins`` keeps its answer only once the scan and descriptions
are kept: the warm-ups leave every row on what a user meets after the first runs."""

_FLOOR = """
import importlib, importlib.metadata
for ep in importlib.metadata.entry_points(group="ksi.plugins"):
    importlib.import_module(ep.value)
"""

_PLUGGY = """
import pluggy
pluggy.PluginManager("ksi").load_setuptools_entrypoints("ksi.plugins")
"""

_STEVEDORE = """
from stevedore import ExtensionManager
ExtensionManager(namespace="ksi.plugins", invoke_on_load=False)
"""

_STEVEDORE_ONE = """
from stevedore import DriverManager
DriverManager(namespace="ksi.plugins", name={name!r}, invoke_on_load=False)
"""

_LEAST_DAEMON = """
import asyncio, importlib, sys
import click, uvloop
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl
from ksi_plugins_builtin import PLUGIN_MODULES
for module in PLUGIN_MODULES:
    importlib.import_module(module)

async def answer(reader, writer):
    await reader.readline()
    writer.write(b'{"ok": true}\\n')
    await writer.drain()
    writer.close()

async def serve(path):
    server = await asyncio.start_unix_server(answer, path)
    await server.serve_forever()

uvloop.run(serve(sys.argv[1]))
"""
"""What any daemon on the plugin contract pays before it can answer: the contract (and so
pydantic), the built-ins' modules, click and a uvloop server; no config, plan or host. It
runs with pydantic's own scan for pydantic plugins off, as the daemon's kept entry-point
scan spares it (``ksi_host._pydantic_plugins``)."""

_HEALTH = b'{"event": "system:health", "data": {}, "correlation_id": "1"}\n'


def _site(root: Path, size: int, *, manifests: bool) -> Path:
    """``size`` installed plugin packages, each depending on the one before.

    Each plugin declares its own event namespace: a plugin that declares none sees
    every event, and so starts with the host even when its manifest says ``lazy``.
    """
    site = root / f"site-{size}-{'lazy' if manifests else 'plain'}"
    for index in range(size):
        name, package = f"bench_{index}", f"bench_pkg_{index}"
        deps = [f"bench_{index - 1}>=1"] if index else []
        source = plugin_source(name, version="1.0", dependencies=deps, namespaces=[name])
        files = {f"{package}/__init__.py": source}
        if manifests:
            files[f"{package}/ksi-plugin.toml"] = _manifest(name, deps)
        install_dist(
            site, dist=f"bench-{index}", version="1.0", files=files, entry_points={name: package}
        )
    return site


def _manifest(name: str, deps: Sequence[str]) -> str:
    return (
        f'name = "{name}"\nversion = "1.0"\nactivation = "lazy"\n'
        f"dependencies = {json.dumps(list(deps))}\n"
        f'event_namespaces = ["{name}"]\n'
        'hooks = ["ksi_handle_event"]\n'
    )


def _env(site: Path, home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(site),
        "HOME": str(home),
        "KSI_HOME": str(home / ".ksi"),
    }


Sample = tuple[float, float]
"""Wall-clock seconds and the process's own CPU seconds (user + system)."""


def _timed(argv: Sequence[str], env: dict[str, str]) -> Sample:
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} exited with {os.waitstatus_to_exitcode(status)}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _first_reply(argv: Sequence[str], env: dict[str, str], path: Path) -> Sample:
    """From spawning a server on ``path`` to its first reply to ``system:health``: wall and CPU."""
    started = time.perf_counter()
    daemon = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    try:
        while True:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as client:
                client.connect(str(path))
                client.sendall(_HEALTH)
                if client.makefile("rb").readline():
                    return time.perf_counter() - started, _cpu_seconds(daemon.pid)
            time.sleep(0.002)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


def _medians(cases: Sequence[tuple[str, Callable[[], Sample]]]) -> list[tuple[str, Sample]]:
    """Each case's median wall time and median CPU time of ``REPEATS`` runs after warming up.

    The cases take turns, one run each per round, so that a shared machine's drift in
    speed over the minutes this takes falls on every row alike.
    """
    for _ in range(WARM_UPS):
        for _, measure in cases:
            measure()  # warm the page cache and the caches the row uses
    samples: dict[str, list[Sample]] = {label: [] for label, _ in cases}
    for _ in range(REPEATS):
        for label, measure in cases:
            samples[label].append(measure())
    return [
        (
            label,
            (
                statistics.median(wall for wall, _ in runs),
                statistics.median(cpu for _, cpu in runs),
            ),
        )
        for label, runs in samples.items()
    ]


def _rows(root: Path, size: int) -> list[tuple[str, Sample]]:
    plain, lazy = _site(root, size, manifests=False), _site(root, size, manifests=True)
    python = sys.executable
    homes = itertools.count()

    def own_home() -> Path:
        """A home of the row's own: its caches are neither another row's nor replaced by one."""
        home = root / f"home-{size}-{next(homes)}"
        home.mkdir(mode=0o700)
        return home

    def script(text: str, site: Path = plain) -> Callable[[], Sample]:
        env = _env(site, own_home())
        return lambda: _timed([python, "-c", text], env)

    def cli(site: Path, *, answers: bool = True, cached: bool = True) -> Callable[[], Sample]:
        home = own_home()
        env = _env(site, home) | ({} if answers else {"KSI_ANSWER_CACHE": "0"})

        def run() -> Sample:
            if not cached:  # the first command after installing every plugin: no cache to use
                shutil.rmtree(home / ".ksi" / "cache", ignore_errors=True)
            return _timed([python, "-m", "ksi_host", "plugins", "--json"], env)

        return run

    def daemon(site: Path) -> Callable[[], Sample]:
        home = own_home()
        path = home / "ksi.sock"
        argv = [python, "-m", "ksi_host", "run", "--socket", str(path), "--log-level", "error"]
        return lambda: _first_reply(argv, _env(site, home), path)

    def least_daemon() -> Callable[[], Sample]:
        home = own_home()
        path = home / "ksi.sock"
        argv = [python, "-c", _LEAST_DAEMON, str(path)]
        env = _env(lazy, home) | {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
        return lambda: _first_reply(argv, env, path)

    one = _STEVEDORE_ONE.format(name="bench_0")
    cases: list[tuple[str, Callable[[], Sample]]] = [
        ("floor: entry_points() + import every module", script(_FLOOR)),
        ("pluggy load_setuptools_entrypoints", script(_PLUGGY)),
        ("stevedore ExtensionManager", script(_STEVEDORE)),
        ("stevedore DriverManager, one named plugin", script(one)),
        ("ksi-host plugins --json, no manifests", cli(plain)),
        ("ksi-host plugins --json, no manifests, kept answers off", cli(plain, answers=False)),
        ("ksi-host plugins --json, lazy manifests", cli(lazy)),
        ("ksi-host plugins --json, lazy manifests, kept answers off", cli(lazy, answers=False)),
        ("ksi-host plugins --json, lazy manifests, caches empty", cli(lazy, cached=False)),
        ("daemon start to first reply, no manifests", daemon(plain)),
        ("daemon start to first reply, lazy manifests", daemon(lazy)),
        ("least daemon: contract, built-ins, uvloop server, no host", least_daemon()),
    ]
    return _medians(cases)


def run() -> list[str]:
    """The cold-start section: one table per size, each row a median and its ratio to the floor."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ksi-bench-") as tmp:
        for size in SIZES:
            rows = _rows(Path(tmp), size)
            floor_wall, floor_cpu = rows[0][1]
            lines += table(
                [f"{size} plugins", "median", "vs floor", "CPU median", "CPU vs floor"],
                [
                    (
                        label,
                        f"{wall * 1000:.0f} ms",
                        ratio(wall, floor_wall),
                        f"{cpu * 1000:.0f} ms",
                        ratio(cpu, floor_cpu),
                    )
                    for label, (wall, cpu) in rows
                ],
            )
            lines.append("")
    return section(
        "Cold start (`tests/benchmarks/bench_discovery.py`)",
        f"Whole processes in a fresh interpreter, timed from outside (start-up included), "
        f"median of {REPEATS} rounds after {WARM_UPS} warm-up rounds, the rows taking turns in "
        "each round "
        "(so that the machine's drift falls on all alike), each row with a `HOME` and "
        "`KSI_HOME` of its own; wall clock and the process's own CPU time "
        "(user + system; the daemon's until its first reply), which load on a shared machine "
        "distorts less, over N installed plugin distributions "
        "(real `.dist-info` folders on `PYTHONPATH`, each plugin a package depending on the "
        'previous one). Floor: a process that scans `entry_points(group="ksi.plugins")` and '
        "imports every plugin module. Peers over the same plugins: pluggy's "
        "`load_setuptools_entrypoints`, stevedore's `ExtensionManager` (its entry-point cache "
        "warm) and its `DriverManager` loading one named plugin. ksi-host lists or serves its "
        'built-in plugins too; "lazy manifests" gives every plugin a `ksi-plugin.toml` with '
        '`activation = "lazy"` (and its own event namespace, so it is lazy). Every ksi-host '
        "row uses the caches the warm-up filled (`docs/OPERATING.md`: the entry-point scan, "
        "manifests, descriptions of plugins without one, kept answers of `plugins`) unless it "
        "says they are empty or off: `plugins` keeps its answer once a plan imports no plugin, "
        "and then prints it while nothing it read changed; with kept answers off "
        "(`KSI_ANSWER_CACHE=0`) it plans every time, from the other caches, as the daemon does. "
        '"Least daemon" is a reference, not a peer: a process that only imports the plugin '
        "contract (and so pydantic, as the floor's plugins do), the built-ins' modules, click "
        "and uvloop, and answers one line on a Unix socket, with no config, plan or host "
        "(and without pydantic's scan for its own plugins, which the daemon's kept scan "
        "spares too): "
        "what any daemon on this contract pays before its first reply. "
        "Targets at 1000: `plugins --json` without manifests <= 1.0x, "
        "with lazy manifests `plugins --json` and the daemon <= 0.5x.",
        lines,
    )


if __name__ == "__main__":
    print("\n".join(run()))
