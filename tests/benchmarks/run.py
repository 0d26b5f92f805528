"""Run every benchmark and floor in one run; print the report and write it to BENCHMARKS.md.

Run as a script (``nox -s bench``), so this folder is on ``sys.path``. Each benchmark module's
``run()`` returns its own Markdown section; nothing in BENCHMARKS.md is edited by hand.
``python tests/benchmarks/run.py NAME ...`` runs only the named modules and prints them
without writing the file.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# In the order BENCHMARKS.md shows them.
BENCHMARKS = (
    "bench_discovery",
    "bench_dispatch",
    "bench_daemon",
    "bench_nats",
    "bench_doctor",
    "bench_containment",
)
REPORT = HERE.parents[1] / "BENCHMARKS.md"


def header() -> list[str]:
    """What produced the figures: command, machine, interpreter and date."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    return [
        "# Benchmarks",
        "",
        "Written by `nox -s bench` (`python tests/benchmarks/run.py`) from one run; do not edit "
        "by hand. Every figure is a median, and every ratio compares two things measured side "
        "by side in that run, because the machine's cores are shared.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- date: {today}",
        "",
    ]


def main(names: list[str]) -> None:
    lines = header()
    for name in names or BENCHMARKS:
        module = importlib.import_module(name)
        section = module.run()
        print("\n".join(section), flush=True)
        lines += section
    if not names:
        REPORT.write_text("\n".join(lines).rstrip() + "\n")
        print(f"wrote {REPORT}")


if __name__ == "__main__":
    main(sys.argv[1:])
