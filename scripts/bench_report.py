#!/usr/bin/env python3
"""Runs sqlaio's benchmarks and its peers' and writes the results into docs/benchmarks.md.

Usage (from the repository root):

  python3 scripts/bench_report.py                 run every bench (interleaved) and write the docs
  python3 scripts/bench_report.py --criterion     also run criterion and add its medians
  python3 scripts/bench_report.py --report-only   write the docs from the last run's results
  python3 scripts/bench_report.py --only sqlite_write,postgres_peers
                                                  rerun some benches, keep the others' results
  python3 scripts/bench_report.py --print-criterion [DIR]
                                                  print criterion's latest medians as ratios to
                                                  the floor of each group (DIR defaults to the
                                                  target directory's criterion/)

Every bench binary has an interleaved mode (`-- --interleaved`): each round
gives every contender one short run in a rotating order and divides it by the
floor's run of the same round; it appends one JSON line per contender to the
file named by SQLAIO_BENCH_JSON. This script collects those lines under
target/bench-results/ (one file per bench), then regenerates the part of
docs/benchmarks.md between the `generated:start` and `generated:end` markers
and draws docs/benchmarks.svg. Nothing outside the markers is touched.

Only the Python standard library is used.
"""

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SVG = ROOT / "docs" / "benchmarks.svg"
RESULTS = ROOT / "target" / "bench-results"
PEERS = ROOT / "benches" / "peers"
START = "<!-- generated:start -->"
END = "<!-- generated:end -->"

# (name, package, cargo arguments before `--`)
BENCHES = [
    ("point_read", "sqlaio", ["--all-features", "--bench", "point_read"]),
    ("sqlite_write", "sqlaio", ["--all-features", "--bench", "sqlite_write"]),
    ("bulk_read", "sqlaio", ["--all-features", "--bench", "bulk_read"]),
    ("postgres", "sqlaio", ["--all-features", "--bench", "postgres"]),
    ("mysql", "sqlaio", ["--all-features", "--bench", "mysql"]),
    ("sqlite_peers", "peers", ["--manifest-path", str(PEERS / "Cargo.toml"), "--bench", "sqlite_peers"]),
    ("postgres_peers", "peers", ["--manifest-path", str(PEERS / "Cargo.toml"), "--bench", "postgres_peers"]),
    ("mysql_peers", "peers", ["--manifest-path", str(PEERS / "Cargo.toml"), "--bench", "mysql_peers"]),
]

FLOORS = {"rusqlite", "rusqlite/one_thread", "postgres", "postgres/one_thread", "mysql", "mysql/one_thread"}

# The groups shown, in order: (suite, scenario, group, title, metric)
# metric: "p50" (per-op median ratio), "ratio" (median of per-round ratios)
GROUPS = [
    ("sqlite", "a", "point_read_latency", "a. point read, one at a time (p50 per read)", "p50"),
    ("sqlite", "b", "sqlite_insert", "b. single-row autocommit insert", "ratio"),
    ("sqlite", "c", "sqlite_tx_10k", "c. 10,000 inserts in one transaction", "ratio"),
    ("sqlite", "d", "point_read_64_tasks", "d. 64 tasks, pool of 4 (time per read)", "ratio"),
    ("sqlite", "e", "sqlite_fetchall", "e. 1,000,000 rows, fetchall (time)", "ratio"),
    ("sqlite", "e", "sqlite_stream", "e. 1,000,000 rows, streamed (time)", "ratio"),
    ("postgres", "a", "pg_point_read", "a. point read, one at a time (p50 per read)", "p50"),
    ("postgres", "b", "pg_insert", "b. single-row autocommit insert", "ratio"),
    ("postgres", "d", "pg_point_read_64_tasks", "d. 64 tasks, pool of 4 (time per read)", "ratio"),
    ("postgres", "e", "pg_fetchall", "e. 1,000,000 rows, fetchall (time)", "ratio"),
    ("postgres", "e", "pg_stream", "e. 1,000,000 rows, streamed (time)", "ratio"),
    ("mysql", "a", "my_point_read", "a. point read, one at a time (p50 per read)", "p50"),
    ("mysql", "b", "my_insert", "b. single-row autocommit insert", "ratio"),
    ("mysql", "c", "my_tx_10k", "c. 10,000 inserts in one transaction", "ratio"),
    ("mysql", "d", "my_point_read_64_tasks", "d. 64 tasks, pool of 4 (time per read)", "ratio"),
    ("mysql", "e", "my_fetchall", "e. 1,000,000 rows, fetchall (time)", "ratio"),
    ("mysql", "e", "my_stream", "e. 1,000,000 rows, streamed (time)", "ratio"),
]

# The suites, in the order the tables show them, with their headings.
SUITES = [("sqlite", "SQLite"), ("postgres", "PostgreSQL"), ("mysql", "MySQL")]

# Versions read from the lock files.
MAIN_CRATES = ["rusqlite", "libsqlite3-sys", "postgres", "tokio-postgres", "mysql", "mysql_common", "tokio",
               "async-std", "smol", "blocking", "criterion"]
PEER_CRATES = ["rusqlite", "libsqlite3-sys", "tokio-rusqlite", "async-sqlite", "deadpool-sqlite", "sqlx",
               "postgres", "tokio-postgres", "deadpool-postgres", "mysql", "mysql_common", "mysql_async", "tokio"]


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def target_dir(package):
    if package == "peers":
        return Path(os.environ.get("PEERS_TARGET_DIR") or os.environ.get("CARGO_TARGET_DIR") or PEERS / "target")
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def run_bench(name, package, args, criterion):
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.jsonl"
    log = RESULTS / f"{name}.log"
    env = dict(os.environ)
    if package == "peers" and os.environ.get("PEERS_TARGET_DIR"):
        env["CARGO_TARGET_DIR"] = os.environ["PEERS_TARGET_DIR"]
    load = os.getloadavg()[1] if hasattr(os, "getloadavg") else None
    for attempt in (1, 2):
        if out.exists():
            out.unlink()
        env["SQLAIO_BENCH_JSON"] = str(out)
        cmd = ["cargo", "bench", *args, "--", "--interleaved"]
        print(f"+ {' '.join(cmd)}", flush=True)
        with open(log, "w") as f:
            code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        if code == 0:
            # The commit, and the machine's load average (5 minutes) when the run started.
            (RESULTS / f"{name}.commit").write_text(commit() + (f" {load:.1f}" if load is not None else "") + "\n")
            break
        log.replace(RESULTS / f"{name}.failed.log")
        log = RESULTS / f"{name}.log"
        print(f"  {name} failed (exit {code}), see target/bench-results/{name}.failed.log"
              + ("; trying once more" if attempt == 1 else ""), flush=True)
    else:
        return False
    if criterion:
        cmd = ["cargo", "bench", *args]
        print(f"+ {' '.join(cmd)}", flush=True)
        with open(RESULTS / f"{name}.criterion.log", "w") as f:
            subprocess.call(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    return True


# ---------------------------------------------------------------------------
# Reading results
# ---------------------------------------------------------------------------

def load_results():
    """{(package, suite, group): [record, ...]} in the order written."""
    results = {}
    for name, package, _ in BENCHES:
        path = RESULTS / f"{name}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            rec["package"] = package
            rec["bench"] = name
            results.setdefault((package, rec["suite"], rec["group"]), []).append(rec)
    return results


def criterion_medians(root):
    """{group: {function: median_ns}} from criterion's latest estimates."""
    out = {}
    for bench in root.glob("*/**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        out.setdefault(meta["group_id"], {})[meta["function_id"]] = est["median"]["point_estimate"]
    return out


def criterion_ratios(medians):
    """{group: [(function, ratio, median_ns)]}, floor first."""
    out = {}
    for group, funcs in medians.items():
        floor = next((funcs[f] for f in funcs if f in FLOORS), None)
        rows = []
        for f, ns in funcs.items():
            rows.append((f, ns / floor if floor else float("nan"), ns))
        rows.sort(key=lambda r: (r[0] not in FLOORS, r[1]))
        out[group] = rows
    return out


def lock_versions(lock, names):
    text = lock.read_text() if lock.exists() else ""
    found = {}
    for block in text.split("[[package]]"):
        m = re.search(r'name = "([^"]+)"\nversion = "([^"]+)"', block)
        if m and m.group(1) in names:
            found.setdefault(m.group(1), []).append(m.group(2))
    return [(n, ", ".join(found[n])) for n in names if n in found]


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

def x(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}x"


def mib(b):
    if b is None:
        return "-"
    if b >= 1024 * 1024:
        return f"{b / 1048576:.1f} MiB"
    return f"{b / 1024:.0f} KiB"


def ns(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.0f} ns"


def visible(rec):
    return not rec["contender"].startswith("model/")


def is_policy(contender):
    """A contender measured under a non-default `WaitPolicy` (`.../wait_sleep`, ...)."""
    return "/wait_" in contender


def cpu_cells(r):
    """CPU time per operation (process-wide, user + system) and its ratio to the floor's."""
    if "cpu_ns_per_op" not in r:
        return " - | - |"
    return f" {ns(r['cpu_ns_per_op'])} | {x(r.get('cpu_ratio'))} |"


def group_table(records, scenario_group):
    """A Markdown table of one group's records (one package's run)."""
    latency = any("p50_ratio" in r for r in records)
    memory = any("peak_bytes" in r for r in records)
    head = "| contender | ratio to floor (median of rounds) | quartiles | CPU per op | CPU ratio |"
    rule = "|---|---:|---:|---:|---:|"
    if latency:
        head += " p50 | p99 |"
        rule += "---:|---:|"
    if memory:
        head += " peak heap above start | heap ratio |"
        rule += "---:|---:|"
    lines = [head, rule]
    floor_peak = next((r.get("peak_bytes", 0) for r in records if r["floor"]), 0)
    for r in records:
        if not visible(r):
            continue
        name = f"`{r['contender']}`" + (" (floor)" if r["floor"] else "")
        row = f"| {name} | {x(r['ratio'])} | {r['q1']:.2f}-{r['q3']:.2f} |"
        if r["floor"]:
            row = f"| {name} | 1.00 ({ns(r['ns_per_op'])} per op) | - |"
        row += cpu_cells(r)
        if latency:
            if r["floor"]:
                row += f" {ns(r['p50_ns'])} | {ns(r['p99_ns'])} |"
            else:
                row += f" {x(r.get('p50_ratio'))} | {x(r.get('p99_ratio'))} |"
        if memory:
            # A ratio to a floor that holds almost nothing (a streamed read
            # that keeps one row) says nothing: show the bytes only.
            ratio = "-" if floor_peak < 1024 else x(r.get("peak_ratio"))
            row += f" {mib(r.get('peak_bytes'))} | {ratio} |"
        lines.append(row)
    return "\n".join(lines)


def find(results, package, suite, group, contender):
    for r in results.get((package, suite, group), []):
        if r["contender"] == contender:
            return r
    return None


def metric(rec, which):
    if rec is None:
        return None
    if which == "p50":
        return rec.get("p50_ratio")
    if which == "p99":
        return rec.get("p99_ratio")
    if which == "peak":
        return rec.get("peak_ratio")
    if which == "peak_mib":
        return rec.get("peak_bytes", 0) / 1048576
    return rec.get("ratio")


TOKIO = ["sqlaio/tokio/current_thread", "sqlaio/tokio/multi_thread_task"]


def targets(results):
    """Rows: (what, target, [(label, value)], met)."""
    rows = []

    def add(what, limit, cells, unit="x"):
        vals = [v for _, v in cells if v is not None]
        met = "-" if not vals else ("met" if all(v <= limit for v in vals) else
                                     ("partly" if any(v <= limit for v in vals) else "missed"))
        fmt = (lambda v: "-" if v is None else f"{v:.2f}x") if unit == "x" else \
              (lambda v: "-" if v is None else f"{v:.2f} MiB")
        target = f"≤ {limit}x" if unit == "x" else f"under {limit:.0f} MiB"
        rows.append((what, target, " / ".join(f"{fmt(v)}" for _, v in cells), met))

    def tokio(group, which, suite="sqlite", contenders=TOKIO, package="sqlaio"):
        return [(c, metric(find(results, package, suite, group, c), which)) for c in contenders]

    add("SQLite a, p50 per read", 3.0, tokio("point_read_latency", "p50"))
    add("SQLite a, p99 per read", 5.0, tokio("point_read_latency", "p99"))
    add("SQLite b, autocommit insert", 1.3, tokio("sqlite_insert", "ratio"))
    add("SQLite c, 10,000 inserts awaited", 8.0,
        tokio("sqlite_tx_10k", "ratio", contenders=[c + "/awaited" for c in TOKIO]))
    add("SQLite c, 10,000 inserts via execute_many", 1.3,
        tokio("sqlite_tx_10k", "ratio", contenders=[c + "/execute_many" for c in TOKIO]))
    add("SQLite d, 64 tasks over 4 connections (Engine::execute)", 2.0,
        tokio("point_read_64_tasks", "ratio", contenders=["sqlaio/tokio"]))
    add("SQLite d, 64 tasks over 4 connections, a connection checked out per read", 2.0,
        tokio("point_read_64_tasks", "ratio", contenders=["sqlaio/tokio/connect"]))
    add("SQLite d, 64 tasks sharing 4 connections", 2.0,
        tokio("point_read_64_tasks", "ratio", contenders=["sqlaio/tokio/shared"]))
    add("SQLite e, fetchall time", 1.15, tokio("sqlite_fetchall", "ratio"))
    add("SQLite e, fetchall peak heap", 1.05, tokio("sqlite_fetchall", "peak"))
    typed = [c + "/fetchall_as" for c in TOKIO]
    add("SQLite e, fetchall_as::<(i64, String)> time", 1.15,
        tokio("sqlite_fetchall", "ratio", contenders=typed))
    add("SQLite e, fetchall_as::<(i64, String)> peak heap", 1.05,
        tokio("sqlite_fetchall", "peak", contenders=typed))
    one_call = [c + "/fetch_all_as" for c in TOKIO]
    add("SQLite e, fetch_all_as::<(i64, String)> time", 1.10,
        tokio("sqlite_fetchall", "ratio", contenders=one_call))
    add("SQLite e, fetch_all_as::<(i64, String)> peak heap", 1.05,
        tokio("sqlite_fetchall", "peak", contenders=one_call))
    add("SQLite e, streaming peak heap above start", 16, tokio("sqlite_stream", "peak_mib"), unit="MiB")
    add("SQLite a under ThreadStrategy + block_on, p50", 2.0,
        tokio("point_read_latency", "p50", contenders=["sqlaio/thread/block_on"]))
    add("PostgreSQL a, p50 per read", 1.25, tokio("pg_point_read", "p50", suite="postgres"))
    # The same in the peers' run: another floor (the bare client's own speed varies between runs).
    add("PostgreSQL a, p50 per read (peers' run)", 1.25,
        tokio("pg_point_read", "p50", suite="postgres", package="peers"))
    add("PostgreSQL d, 64 tasks over 4 connections (Engine::execute)", 1.05,
        tokio("pg_point_read_64_tasks", "ratio", suite="postgres", contenders=["sqlaio/tokio"]))
    add("PostgreSQL e, streaming peak heap vs bare streamed read", 1.05,
        tokio("pg_stream", "peak", suite="postgres"))
    # MySQL: the headline is the server shape, a task on a multi-thread runtime;
    # a current-thread runtime is an extra row.
    task = ["sqlaio/tokio/multi_thread_task"]
    add("MySQL a, p50 per read (task on a multi-thread runtime)", 1.3,
        tokio("my_point_read", "p50", suite="mysql", contenders=task))
    add("MySQL a, p50 per read (task on a multi-thread runtime, peers' run)", 1.3,
        tokio("my_point_read", "p50", suite="mysql", contenders=task, package="peers"))
    add("MySQL a, p50 per read (current-thread runtime)", 1.3,
        tokio("my_point_read", "p50", suite="mysql", contenders=["sqlaio/tokio/current_thread"]))
    rows.extend(ahead_of_peers(results, "MySQL", "mysql", task[0], MYSQL_AHEAD))
    return rows


# The MySQL scenarios where sqlaio (a task on a multi-thread runtime) should be
# ahead of sqlx and mysql_async, in the peers' run: (what, group, metric,
# sqlaio's variant, the peers' contenders compared: a suffix, or None for all).
MYSQL_AHEAD = [
    ("a, p50 per read", "my_point_read", "p50", "", None),
    ("c, 10,000 inserts awaited", "my_tx_10k", "ratio", "/awaited", "/awaited"),
    ("c, 10,000 inserts in one call (`execute_many`; mysql_async's `exec_batch`)", "my_tx_10k", "ratio",
     "/execute_many", "/exec_batch"),
    ("e, fetchall into `Row`s", "my_fetchall", "ratio", "", None),
    ("e, fetchall_as::<(i64, String)>", "my_fetchall", "ratio", "/fetchall_as", None),
    ("e, streamed", "my_stream", "ratio", "", None),
]


def ahead_of_peers(results, name, suite, ours, scenarios):
    """Target rows: sqlaio's contender `ours` against the best peer of the same
    run (the peers' package), lower being ahead."""
    rows = []
    for what, group, which, ours_suffix, peer_suffix in scenarios:
        recs = results.get(("peers", suite, group), [])
        mine = find(results, "peers", suite, group, ours + ours_suffix)
        theirs = [r for r in recs if is_peer(r["contender"])
                  and (peer_suffix is None or r["contender"].endswith(peer_suffix))]
        if mine is None or not theirs:
            continue
        best = min(theirs, key=lambda r: metric(r, which))
        a, b = metric(mine, which), metric(best, which)
        rows.append((f"{name} {what}: ahead of every peer", "below the best peer",
                     f"{a:.2f}x vs {b:.2f}x (`{best['contender']}`)", "met" if a < b else "missed"))
    return rows


PEER_NAMES = ["tokio-rusqlite", "async-sqlite", "deadpool-sqlite", "sqlx", "tokio-postgres", "deadpool-postgres",
              "mysql_async"]


def is_peer(contender):
    return contender.split("/")[0] in PEER_NAMES


def variant(contender):
    """What follows `sqlaio/<strategy>/<executor>` in a contender's name: `/awaited`,
    `/fetchall_as`, `/fetch_all_as`, or ``; for the 64-task groups (`sqlaio/<strategy>[/shared|/connect]`),
    `/shared`, `/connect` or ``."""
    parts = contender.split("/")
    if parts[-1] in ("shared", "connect") and len(parts) == 3:
        return "/" + parts[-1]
    return "".join("/" + p for p in parts[3:])


def versus_peers(results):
    """Per group: best sqlaio under TokioStrategy (its own run) vs the best peer (peers' run)."""
    rows = []
    for suite, scen, group, title, which in GROUPS:
        peers = [r for r in results.get(("peers", suite, group), []) if is_peer(r["contender"])]
        if group == "sqlite_tx_10k":
            # Compare like with like: awaited with awaited, batches with batches.
            kinds = [("awaited", "/awaited", "/awaited"),
                     ("one trip (`execute_many` against one closure)", "/execute_many", "/one_call"),
                     ("one closure (`run_in_thread`)", "/one_call", "/one_call")]
        elif group == "my_tx_10k":
            # mysql_async's `exec_batch` is the peers' one call with every parameter set.
            kinds = [("awaited", "/awaited", "/awaited"),
                     ("one trip (`execute_many` against `exec_batch`)", "/execute_many", "/exec_batch")]
        elif group.endswith("_64_tasks"):
            # The peers without a pool share 4 connections between the tasks, as `/shared` does.
            kinds = [("each read through the pool (`Engine::execute`)", "", ""),
                     ("a connection checked out per read", "/connect", ""),
                     ("4 connections shared by the tasks", "/shared", "")]
        elif group.endswith("_fetchall"):
            # The peers build `(i64, String)` tuples, as `fetchall_as` does.
            kinds = [("rows as `Row`", "", ""), ("rows as `(i64, String)`", "/fetchall_as", "")]
        else:
            kinds = [("", "", "")]
        # PostgreSQL and MySQL: sqlaio from the peers' own run, against the same floor.
        source = "peers" if suite in ("postgres", "mysql") else "sqlaio"
        for kind, ours_suffix, peer_suffix in kinds:
            ours = [r for r in results.get((source, suite, group), [])
                    if r["contender"].startswith("sqlaio/tokio") and not is_policy(r["contender"])
                    and variant(r["contender"]) == ours_suffix]
            theirs = [r for r in peers if r["contender"].endswith(peer_suffix) or not peer_suffix]
            if not ours or not theirs:
                continue
            best_ours = min(ours, key=lambda r: metric(r, which))
            best_peer = min(theirs, key=lambda r: metric(r, which))
            a, b = metric(best_ours, which), metric(best_peer, which)
            rows.append((suite, f"{title}{' - ' + kind if kind else ''}", best_ours["contender"], a,
                         best_peer["contender"], b, "yes" if a <= b else "no"))
    return rows


# The waiting policy's rows: (group, the default's contender, title).
POLICY_GROUPS = [
    ("point_read_latency", "sqlaio/tokio/multi_thread_task", "a. point read"),
    ("sqlite_insert", "sqlaio/tokio/multi_thread_task", "b. autocommit insert"),
    ("point_read_64_tasks", "sqlaio/tokio", "d. 64 tasks, pool of 4"),
]


def policy_label(contender):
    tail = contender.rsplit("/wait_", 1)[1]
    if tail == "sleep":
        return "`Sleep`"
    m = re.fullmatch(r"spin_(\d+)us", tail)
    return f"`SpinAtMost({m.group(1)} µs)`" if m else f"`{tail}`"


def policy_rows(results):
    """(scenario title, policy, record) for the default and every policy contender."""
    rows = []
    for group, default, title in POLICY_GROUPS:
        recs = results.get(("sqlaio", "sqlite", group), [])
        others = [r for r in recs if is_policy(r["contender"])]
        if not others:
            continue
        base = next((r for r in recs if r["contender"] == default), None)
        if base:
            rows.append((title, "`Adaptive` (default)", base))
        rows.extend((title, policy_label(r["contender"]), r) for r in others)
    return rows


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------

# The targets under TokioStrategy, drawn as red lines on the chart.
CHART_TARGETS = {
    ("sqlite", "point_read_latency"): [3.0],
    ("sqlite", "sqlite_insert"): [1.3],
    ("sqlite", "sqlite_tx_10k"): [8.0, 1.3],
    ("sqlite", "point_read_64_tasks"): [2.0],
    ("sqlite", "sqlite_fetchall"): [1.15],
    ("postgres", "pg_point_read"): [1.25],
    ("postgres", "pg_point_read_64_tasks"): [1.05],
    ("mysql", "my_point_read"): [1.3],
}


def svg_chart(results):
    """Horizontal bars: ratio to the floor per contender, per scenario, on a log scale."""
    panels = []
    for suite, scen, group, title, which in GROUPS:
        bars = []
        for package in ("sqlaio", "peers"):
            for r in results.get((package, suite, group), []):
                if not visible(r) or r["floor"] or is_policy(r["contender"]):
                    continue
                if package == "peers" and r["contender"].startswith("sqlaio"):
                    label = r["contender"] + " (peers run)"
                else:
                    label = r["contender"]
                v = metric(r, which)
                if v is not None:
                    bars.append((label, v, "sqlaio" if label.startswith("sqlaio") else "peer"))
        if bars:
            panels.append((f"{dict(SUITES)[suite]} {title}", bars,
                           CHART_TARGETS.get((suite, group), [])))
    if not panels:
        return None
    lo, hi = 0.125, 128.0
    label_w, bar_w, row_h, head_h, gap = 330, 440, 15, 22, 12
    width = label_w + bar_w + 70
    height = 40 + sum(head_h + row_h * len(b) + gap for _, b, _ in panels) + 20

    def xpos(v):
        v = min(max(v, lo), hi)
        return label_w + bar_w * (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="18" font-size="13" font-weight="bold">Time ratio to the bare driver '
           f'(1 = floor; log scale, lower is better; bars capped at {hi:.0f}x)</text>']
    y = 40
    for title, bars, limits in panels:
        out.append(f'<text x="10" y="{y + 13}" font-weight="bold">{esc(title)}</text>')
        y += head_h
        top = y
        for label, v, kind in bars:
            colour = "#3366cc" if kind == "sqlaio" else "#e08a2c"
            x1 = xpos(v)
            out.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end">{esc(label)}</text>')
            out.append(f'<rect x="{label_w}" y="{y + 2}" width="{max(x1 - label_w, 1):.1f}" '
                       f'height="{row_h - 4}" fill="{colour}"/>')
            out.append(f'<text x="{x1 + 4:.1f}" y="{y + 11}">{v:.2f}x</text>')
            y += row_h
        for tick in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64):
            tx = xpos(tick)
            dash = "" if tick == 1 else ' stroke-dasharray="2,3"'
            out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{y}" stroke="#555"{dash} stroke-width="0.6"/>')
            out.append(f'<text x="{tx:.1f}" y="{top - 2}" text-anchor="middle" fill="#555" font-size="9">{tick:g}x</text>')
        for limit in limits:
            tx = xpos(limit)
            out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{y}" stroke="#cc0000" stroke-width="1.5"/>')
        y += gap
    out.append(f'<rect x="{label_w}" y="{y}" width="10" height="10" fill="#3366cc"/>'
               f'<text x="{label_w + 14}" y="{y + 9}">sqlaio</text>'
               f'<rect x="{label_w + 70}" y="{y}" width="10" height="10" fill="#e08a2c"/>'
               f'<text x="{label_w + 84}" y="{y + 9}">peer crates (their own run and floor)</text>'
               f'<line x1="{label_w + 300}" y1="{y}" x2="{label_w + 300}" y2="{y + 10}" stroke="#cc0000" stroke-width="1.5"/>'
               f'<text x="{label_w + 306}" y="{y + 9}">target</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------
# The generated section
# ---------------------------------------------------------------------------

def machine():
    cores = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cores} cores{' (' + model + ')' if model else ''}, {platform.system()} {platform.machine()}"


def rustc():
    try:
        return subprocess.check_output(["rustc", "--version"], text=True).strip()
    except OSError:
        return "rustc (unknown)"


def commit():
    """The commit measured: SQLAIO_BENCH_COMMIT (for a run from an exported tree), else git's HEAD."""
    if os.environ.get("SQLAIO_BENCH_COMMIT"):
        return os.environ["SQLAIO_BENCH_COMMIT"]
    try:
        head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                       stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.call(["git", "diff", "--quiet", "HEAD", "--", "src", "strategies", "Cargo.toml"],
                                cwd=ROOT, stderr=subprocess.DEVNULL) != 0
        return head + (" with uncommitted changes to the library" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measured_commits():
    """The commit each bench's results were measured at (written beside them by `run_bench`)."""
    by_commit, loads = {}, {}
    for name, _, _ in BENCHES:
        path = RESULTS / f"{name}.commit"
        if (RESULTS / f"{name}.jsonl").exists():
            at = path.read_text().strip() if path.exists() else commit()
            # "<commit>[ <load average>]"
            head, _, last = at.rpartition(" ")
            if head and re.fullmatch(r"[\d.]+", last):
                at, loads[name] = head, last
            by_commit.setdefault(at, []).append(name)
    if len(by_commit) <= 1:
        text = f"commit `{next(iter(by_commit), commit())}`"
    else:
        text = "; ".join(f"commit `{at}` for {', '.join(f'`{n}`' for n in names)}"
                         for at, names in by_commit.items())
    if loads:
        text += f" (load average over 5 minutes when each run started, on {os.cpu_count()} cores: " + ", ".join(
            f"`{n}` {v}" for n, v in loads.items()) + ")"
    return text


def generate(results, crit):
    md = []
    md.append(START)
    md.append("")
    md.append("*This section is written by `scripts/bench_report.py`; edit the script, not the text.*")
    md.append("")
    md.append(f"**Machine.** {machine()}; {rustc()}. Ratios are to the floor measured in the same "
              "run; absolute times are shown only for the floors, to give a scale. Code measured: "
              f"{measured_commits()}, sqlaio built with `--all-features` (the peers' package builds "
              "it with `postgres`, `mysql`, `serde`, `tokio`, `async-std` and `smol`).")
    md.append("")
    md.append("**Crate versions** (from the lock files).")
    md.append("")
    md.append("| crate | sqlaio's benches (`Cargo.lock`) | peers' benches (`benches/peers/Cargo.lock`) |")
    md.append("|---|---|---|")
    main = dict(lock_versions(ROOT / "Cargo.lock", MAIN_CRATES))
    peer = dict(lock_versions(PEERS / "Cargo.lock", PEER_CRATES))
    for name in dict.fromkeys(MAIN_CRATES + PEER_CRATES):
        md.append(f"| `{name}` | {main.get(name, '-')} | {peer.get(name, '-')} |")
    md.append("")
    md.append("![Ratios to the floor per scenario](benchmarks.svg)")
    md.append("")
    md.append("### Targets")
    md.append("")
    md.append("Measured under `TokioStrategy` (current-thread runtime / task on a multi-thread "
              "runtime) unless the row says otherwise; \"partly\" means one of the two meets it.")
    md.append("")
    md.append("| target | limit | measured | verdict |")
    md.append("|---|---:|---:|---|")
    for what, limit, measured, met in targets(results):
        md.append(f"| {what} | {limit} | {measured} | {met} |")
    md.append("")
    vs = versus_peers(results)
    if vs:
        md.append("### sqlaio against the best peer")
        md.append("")
        md.append("The lower of sqlaio's two `TokioStrategy` contenders against the lowest peer. "
                  "SQLite: each side's ratio to the floor of its own run (the SQLite peers cannot "
                  "share a build with sqlaio, see [Peers](#peers)). PostgreSQL and MySQL: both from "
                  "the peers' run, which measures sqlaio beside them against one floor.")
        md.append("")
        md.append("| database | scenario | sqlaio (`TokioStrategy`) | ratio | best peer | ratio | sqlaio as fast |")
        md.append("|---|---|---|---:|---|---:|---|")
        for suite, title, ours, a, theirs, b, ok in vs:
            md.append(f"| {suite} | {title} | `{ours}` | {a:.2f}x | `{theirs}` | {b:.2f}x | {ok} |")
        md.append("")
    policy = policy_rows(results)
    if policy:
        md.append("### The waiting policy")
        md.append("")
        md.append("`EngineBuilder::wait_policy` under `TokioStrategy`, awaited from a task on a "
                  "multi-thread runtime (scenario d: 64 such tasks). Time and CPU per operation "
                  "are ratios to the floor of the same run; CPU time is the whole process's "
                  "(user + system, every thread) during the measured loop, so a worker or a "
                  "caller that checks without sleeping counts, and so does a woken thread.")
        md.append("")
        md.append("| scenario | policy | contender | time ratio | p50 | p99 | CPU per op | CPU ratio |")
        md.append("|---|---|---|---:|---:|---:|---:|---:|")
        for title, label, r in policy:
            p50 = x(r.get("p50_ratio")) if "p50_ratio" in r else "-"
            p99 = x(r.get("p99_ratio")) if "p99_ratio" in r else "-"
            md.append(f"| {title} | {label} | `{r['contender']}` | {x(r['ratio'])} | {p50} | {p99} |"
                      + cpu_cells(r))
        md.append("")
    for suite, heading in SUITES:
        if not any(key[1] == suite for key in results):
            continue
        md.append(f"### {heading}: every contender")
        md.append("")
        shown = set()
        for s, scen, group, title, which in GROUPS:
            if s != suite or group in shown:
                continue
            shown.add(group)
            for package, what in (("sqlaio", "sqlaio's benches"), ("peers", "peers' benches")):
                recs = results.get((package, suite, group))
                if not recs:
                    continue
                rounds = recs[0]["rounds"]
                md.append(f"**{title.split(' (')[0]}** - `{group}`, {what}, {rounds} rounds:")
                md.append("")
                md.append(group_table(recs, group))
                md.append("")
    if crit:
        md.append("### Criterion's medians")
        md.append("")
        md.append("The same contenders measured by criterion one after the other (ratio of each "
                  "median to the floor's median in the same group). On a shared machine these move "
                  "with the load of the minute; the interleaved tables above are the ones to compare.")
        md.append("")
        for package, groups in crit:
            for group, rows in sorted(groups.items()):
                if group.startswith("worker_wait"):
                    continue
                md.append(f"`{group}` ({package}): " + ", ".join(
                    f"`{f}` {r:.2f}x" for f, r, _ in rows if f not in FLOORS))
                md.append("")
    md.append(END)
    return "\n".join(md)


def write_doc(section):
    text = DOC.read_text()
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"
    DOC.write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--criterion", action="store_true", help="also run criterion and report its medians")
    ap.add_argument("--report-only", action="store_true", help="do not run anything")
    ap.add_argument("--only", help="comma-separated bench names to run")
    ap.add_argument("--print-criterion", nargs="?", const="", metavar="DIR",
                    help="print criterion's medians as ratios and exit")
    args = ap.parse_args()

    if args.print_criterion is not None:
        root = Path(args.print_criterion) if args.print_criterion else target_dir("sqlaio") / "criterion"
        for group, rows in sorted(criterion_ratios(criterion_medians(root)).items()):
            print(f"## {group}")
            for f, r, v in rows:
                print(f"{f:44} median {ns(v):>10}  {r:6.2f}x floor")
            print()
        return

    if not args.report_only:
        only = set(args.only.split(",")) if args.only else None
        for name, package, cargo_args in BENCHES:
            if only and name not in only:
                continue
            run_bench(name, package, cargo_args, args.criterion)

    results = load_results()
    if not results:
        sys.exit("no results under target/bench-results: run without --report-only first")
    crit = []
    if args.criterion:
        for package in ("sqlaio", "peers"):
            root = target_dir(package) / "criterion"
            if root.exists():
                crit.append((package, criterion_ratios(criterion_medians(root))))
    write_doc(generate(results, crit))
    chart = svg_chart(results)
    if chart:
        SVG.write_text(chart)
    print(f"wrote {DOC.relative_to(ROOT)} and {SVG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
