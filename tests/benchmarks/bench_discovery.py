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


def _first_reply(env: dict[str, str], home: Path) -> Sample:
    """From spawning ``ksi-host run`` to its first ``system:health`` reply: wall and its CPU."""
    path = home / "ksi.sock"
    started = time.perf_counter()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ksi_host", "run", "--socket", str(path), "--log-level", "error"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
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


def _median(measure: Callable[[], Sample]) -> Sample:
    """The median wall time and the median CPU time of ``REPEATS`` runs after a warm-up."""
    measure()  # warm the page cache and stevedore's entry-point cache
    samples = [measure() for _ in range(REPEATS)]
    return (
        statistics.median(wall for wall, _ in samples),
        statistics.median(cpu for _, cpu in samples),
    )


def _rows(root: Path, size: int) -> list[tuple[str, Sample]]:
    plain, lazy = _site(root, size, manifests=False), _site(root, size, manifests=True)
    home = root / f"home-{size}"
    home.mkdir(mode=0o700)
    python = sys.executable

    def script(text: str, site: Path = plain) -> Callable[[], Sample]:
        return lambda: _timed([python, "-c", text], _env(site, home))

    def cli(site: Path, *, answers: bool = True) -> Callable[[], Sample]:
        env = _env(site, home) | ({} if answers else {"KSI_ANSWER_CACHE": "0"})
        return lambda: _timed([python, "-m", "ksi_host", "plugins", "--json"], env)

    def daemon(site: Path) -> Callable[[], Sample]:
        return lambda: _first_reply(_env(site, home), home)

    def cold(measure: Callable[[], Sample]) -> Callable[[], Sample]:
        """``measure`` as the first command after installing every plugin: no cache to use."""

        def run() -> Sample:
            shutil.rmtree(home / ".ksi" / "cache", ignore_errors=True)
            return measure()

        return run

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
        ("ksi-host plugins --json, lazy manifests, caches empty", cold(cli(lazy))),
        ("daemon start to first reply, no manifests", daemon(plain)),
        ("daemon start to first reply, lazy manifests", daemon(lazy)),
    ]
    return [(label, _median(measure)) for label, measure in cases]


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
        f"median of {REPEATS} after one warm-up, wall clock and the process's own CPU time "
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
        "Targets at 1000: `plugins --json` without manifests <= 1.0x, "
        "with lazy manifests `plugins --json` and the daemon <= 0.5x.",
        lines,
    )


if __name__ == "__main__":
    print("\n".join(run()))
