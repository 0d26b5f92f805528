"""Run every benchmark and print medians and ratios against a floor measured in the same run."""

from __future__ import annotations


def main() -> None:
    print("no benchmarks yet")


if __name__ == "__main__":
    main()
