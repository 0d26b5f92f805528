"""Run every benchmark and print medians and ratios against a floor measured in the same run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_discovery
import bench_doctor


def main() -> None:
    for line in bench_discovery.run():
        print(line)
    for line in bench_doctor.run():
        print(line)


if __name__ == "__main__":
    main()
