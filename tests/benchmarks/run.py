"""Run every benchmark and print medians and ratios against a floor measured in the same run.

Run as a script (``nox -s bench``), so this folder is on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon
import bench_discovery
import bench_dispatch
import bench_doctor


def main() -> None:
    print("\n".join(bench_discovery.run()))
    bench_dispatch.run()
    bench_daemon.run()
    print("\n".join(bench_doctor.run()))


if __name__ == "__main__":
    main()
