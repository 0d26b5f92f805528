"""Run every benchmark and print medians and ratios against a floor measured in the same run.

Run as a script (``nox -s bench``), so this folder is on ``sys.path``.
"""

from __future__ import annotations

import bench_dispatch


def main() -> None:
    bench_dispatch.run()


if __name__ == "__main__":
    main()
