#!/usr/bin/env python3
"""Prints the point_read benchmark's medians as ratios to the bare rusqlite call.

Usage: scripts/bench_ratios.py [CRITERION_DIR]   (default: target/criterion)

Reads the latest run (`new/estimates.json`) of every benchmark in the
point_read bench and divides each median by the floor measured in the same
run: `point_read/rusqlite` for one read at a time, and
`point_read_64_tasks/rusqlite/one_thread` for the groups under 64 tasks
(which do the same number of reads per iteration, so the time ratio is the
inverse of the throughput ratio).
"""

import json
import sys
from pathlib import Path

FLOORS = {
    "point_read": ("point_read", "rusqlite"),
    "worker_wait_sequential": ("point_read", "rusqlite"),
    "point_read_64_tasks": ("point_read_64_tasks", "rusqlite/one_thread"),
    "worker_wait_64_tasks": ("point_read_64_tasks", "rusqlite/one_thread"),
}


def load(root):
    results = {}
    for bench in root.glob("*/**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        median = estimates["median"]
        results[(meta["group_id"], meta["function_id"])] = (
            median["point_estimate"],
            median["confidence_interval"]["lower_bound"],
            median["confidence_interval"]["upper_bound"],
            meta.get("throughput"),
        )
    return results


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    results = load(root)
    order = list(FLOORS)
    for group in order:
        rows = [(f, v) for (g, f), v in results.items() if g == group]
        if not rows:
            continue
        floor = results.get(FLOORS[group])
        print(f"## {group}")
        for function, (median, low, high, throughput) in sorted(
            rows, key=lambda r: r[1][0]
        ):
            line = f"{function:36} median {fmt_time(median):>10}  [{fmt_time(low)} .. {fmt_time(high)}]"
            if throughput and "Elements" in throughput:
                per_s = throughput["Elements"] / median * 1e9
                line += f"  {per_s / 1e3:7.1f} K reads/s"
            if floor:
                line += f"  {median / floor[0]:5.2f}x floor"
            print(line)
        print()


if __name__ == "__main__":
    main()
