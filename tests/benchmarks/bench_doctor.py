"""``ksi-host doctor`` on N healthy installed plugins, as a ratio to the floor of the same work.

Both sides are whole processes timed from outside, since doctor's cost includes
starting its import worker: the floor is one interpreter that scans the
``ksi.plugins`` entry points and imports the same modules.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import ratio, section, table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_discovery import _site

SIZE = 100
REPEATS = 5

_FLOOR = """
import importlib, importlib_metadata
import ksi_host.plugin_base
for ep in importlib_metadata.entry_points(group="ksi.plugins"):
    if ep.dist.name.startswith("bench-"):
        importlib.import_module(ep.value)
"""


def _median_wall(command: list[str], env: dict[str, str]) -> float:
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def run() -> list[str]:
    """The doctor section: a whole `ksi-host doctor` process against the bare floor."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        site = _site(root, SIZE, manifests=False)
        env = {"PYTHONPATH": str(site), "KSI_HOME": str(root), "HOME": str(root)}
        floor = _median_wall([sys.executable, "-c", _FLOOR], env)
        doctor = _median_wall([sys.executable, "-m", "ksi_host", "doctor"], env)
    return section(
        "Doctor (`tests/benchmarks/bench_doctor.py`)",
        f"Whole processes with {SIZE} installed plugins: a fresh interpreter that scans the "
        "entry points and imports every plugin (the floor) against `ksi-host doctor`, which "
        f"imports them again in an isolated worker. Median of {REPEATS} runs each.",
        table(
            ["plugins", "floor", "doctor", "ratio"],
            [(SIZE, f"{floor * 1000:.1f} ms", f"{doctor * 1000:.1f} ms", ratio(doctor, floor))],
        ),
    )


if __name__ == "__main__":
    print("\n".join(run()))
