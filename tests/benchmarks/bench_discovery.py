"""Discovery + resolution of N installed plugins, as a ratio to a bare entry-point scan + import.

Each measurement runs in a fresh interpreter (imports are cached per process) and
times only the work inside it, so interpreter start-up is left out of both sides.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import ratio, section, table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.dists import install_dist, plugin_source

SIZES = (100, 1000)
REPEATS = 5

_FLOOR = """
import time, importlib, importlib_metadata
import ksi_host.plugin_base
start = time.perf_counter()
for ep in importlib_metadata.entry_points(group="ksi.plugins"):
    if ep.dist.name.startswith("bench-"):
        importlib.import_module(ep.value)
print(time.perf_counter() - start)
"""

_PIPELINE = """
import os, time
import ksi_host.plugin_base
from ksi_host._pipeline import build_plan
start = time.perf_counter()
plan = build_plan(env=dict(os.environ), builtin_package=None)
elapsed = time.perf_counter() - start
assert len(plan.order) >= {size}, len(plan.order)
print(elapsed)
"""


def _site(root: Path, size: int) -> Path:
    """``size`` installed plugins, each depending on the one before (a chain of edges)."""
    site = root / f"site-{size}"
    for index in range(size):
        deps = [f"bench_{index - 1}>=1"] if index else []
        install_dist(
            site,
            dist=f"bench-{index}",
            version="1.0",
            files={f"bench_mod_{index}.py": plugin_source(f"bench_{index}", dependencies=deps)},
            entry_points={f"bench_{index}": f"bench_mod_{index}"},
        )
    return site


def _median(script: str, site: Path, home: Path) -> float:
    env = {"PYTHONPATH": str(site), "KSI_HOME": str(home), "HOME": str(home)}
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(REPEATS)
    ]
    return statistics.median(runs)


def run() -> list[str]:
    """The discovery section: the pipeline's plan build against the bare floor."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size in SIZES:
            site = _site(root, size)
            floor = _median(_FLOOR, site, root)
            pipeline = _median(_PIPELINE.format(size=size), site, root)
            rows.append(
                (
                    size,
                    f"{floor * 1000:.1f} ms",
                    f"{pipeline * 1000:.1f} ms",
                    ratio(pipeline, floor),
                )
            )
    return section(
        "Discovery (`tests/benchmarks/bench_discovery.py`)",
        "N installed fixture distributions (real `.dist-info` folders on `PYTHONPATH`), each "
        'plugin depending on the previous one. Floor: one `entry_points(group="ksi.plugins")` '
        "scan plus importing the same modules. Measured: `build_plan` (discover + describe + "
        f"resolve). Median of {REPEATS} fresh interpreters, start-up excluded on both sides.",
        table(["plugins", "floor", "discover+describe+resolve", "ratio"], rows),
    )


if __name__ == "__main__":
    print("\n".join(run()))
