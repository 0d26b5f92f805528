"""Run every benchmark and print medians and ratios against a floor measured in the same run."""

from __future__ import annotations


def main() -> None:
    import bench_daemon

    bench_daemon.run()


if __name__ == "__main__":
    main()
