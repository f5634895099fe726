"""Benchmark of the MST scheduler: distance matrix + MST + schedule.

Run: ``.venv/bin/python benchmarks/bench_mst.py`` (``--quick`` for fewer
configurations, ``--repeats K`` to change the number of timed runs).

For each layer size (C_out, N) it builds seeded random weights and times
``build_schedule`` (which computes the bit-packed Hamming matrix, the
minimum-height MST and the Schedule with its correction sets), median of 5
runs, and prints markdown tables: time (median, min-max), tree weight, height
(and the height of a plain Prim tree from channel 0 for comparison), roots,
and the XNOR reduction ratio C*N / (N*roots + weight). On random weights about
2x is expected: a sanity anchor, not a goal. Variants: plain, negation edges,
max_depth 8 and 4, and an edge_cost of ceil(d / 64) (a folded gather unit
fetching 64 positions per cycle).

A second table uses "drifted" weights (every channel a copy of a random
earlier channel with 0.5 % of its bits flipped): small distances and many
ties, closer to what reuse-aware training produces, where height and the
depth limit matter.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

from _record import Column, Recorder, Table, add_record_argument, render_table
from mstbnn.compiler import mst
from mstbnn.compiler.mst import build_schedule, hamming_matrix, mst_weight

SIZES = [(64, 576), (128, 1152), (256, 2304), (512, 4608)]
VARIANTS = [
    ("plain", {}),
    ("negation", {"negation": True}),
    ("max_depth=8", {"max_depth": 8}),
    ("max_depth=4", {"max_depth": 4}),
    ("edge_cost=ceil(d/64)", {"edge_cost": lambda d: -(-d // 64)}),
]


def random_weights(c: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((c, n)) < 0.5


def drifted_weights(c: int, n: int, seed: int, flip: float = 0.005) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bits = np.empty((c, n), dtype=bool)
    bits[0] = rng.random(n) < 0.5
    for i in range(1, c):
        bits[i] = bits[rng.integers(0, i)] ^ (rng.random(n) < flip)
    return bits


def plain_prim_height(bits: np.ndarray, negation: bool) -> int:
    """Height of the textbook Prim tree from channel 0 (no tie-breaking, no re-rooting)."""
    d = hamming_matrix(bits)
    if negation:
        d = np.minimum(d, bits.shape[1] - d)
    parent = mst._prim(d, int(d.max()) + 1, 0, tie_break=False, max_level=None)
    return int(mst._levels(parent).max())


def run(bits: np.ndarray, kwargs: dict, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sched = build_schedule(bits, **kwargs)
        times.append(time.perf_counter() - start)
    c, n = bits.shape
    negation = kwargs.get("negation", False)
    best = n + mst_weight(bits, negation=negation)
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "weight": sched.weight,
        "height": sched.height,
        "prim_height": plain_prim_height(bits, negation),
        "roots": len(sched.roots),
        "ratio": c * n / sched.xnors(n),
        "extra": sched.xnors(n) - best,
    }


COLUMNS = [
    Column("c_out", "C_out", "right"), Column("n", "N", "right"), Column("variant", "variant"),
    Column("median", "time median (s)", "right", "{:.3f}"), Column("span", "min-max (s)", "right", "{0:.3f}-{1:.3f}"),
    Column("weight", "weight", "right"), Column("height", "height", "right"),
    Column("prim_height", "plain Prim height", "right"), Column("roots", "roots", "right"),
    Column("extra", "extra XNORs vs MST", "right"), Column("ratio", "ratio", "right", "{:.2f}"),
]
SUMMARY = [
    Column("weights", "weights"), Column("size", "C_out x N"), Column("variant", "variant"),
    Column("median", "time (s)", "right", "{:.3f}"), Column("height", "height", "right"),
    Column("extra", "extra XNORs vs MST", "right"), Column("ratio", "ratio", "right", "{:.2f}"),
]
SUMMARY_VARIANTS = ("plain", "max_depth=8", "max_depth=4")


def table(title: str, make, sizes, variants, repeats: int) -> Table:
    print(f"\n### {title}\n")
    t = Table(COLUMNS)
    print(render_table(Table(COLUMNS)), flush=True)  # header now, rows as they are measured
    for c, n in sizes:
        bits = make(c, n, seed=c * 100003 + n)
        for name, kwargs in variants:
            r = run(bits, kwargs, repeats)
            t.add(c_out=c, n=n, variant=name, median=r["median"], span=[r["min"], r["max"]], weight=r["weight"],
                  height=r["height"], prim_height=r["prim_height"], roots=r["roots"], extra=r["extra"],
                  ratio=r["ratio"])
            print(render_table(t).split("\n")[-1], flush=True)
    return t


def summary(tables: dict) -> Table:
    """The README's rows: the largest layer, unconstrained and depth-limited, each kind of weights."""
    t = Table(SUMMARY)
    for kind, table_ in tables.items():
        big = max(r["c_out"] for r in table_.rows)
        for r in table_.rows:
            if r["c_out"] == big and r["variant"] in SUMMARY_VARIANTS:
                t.add(weights=kind, size=f"{r['c_out']} x {r['n']}", variant=r["variant"], median=r["median"],
                      height=r["height"], extra=r["extra"], ratio=r["ratio"])
    return t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (median reported)")
    parser.add_argument("--quick", action="store_true", help="plain variant on random weights only")
    add_record_argument(parser, None)
    args = parser.parse_args(argv)
    record = Recorder(("mst_quick" if args.quick else "mst") if args.record is None else args.record, __file__, argv)
    print(
        f"numpy {np.__version__}, python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, {args.repeats} runs per row"
    )
    variants = VARIANTS[:1] if args.quick else VARIANTS
    tables = {"random": table("Random weights (sanity anchor: about 2x)", random_weights, SIZES, variants,
                              args.repeats)}
    if not args.quick:
        tables["drifted"] = table("Drifted weights (0.5 % flips from a random earlier channel)", drifted_weights,
                                  SIZES, variants, args.repeats)
    for key, t in tables.items():
        record.add(key, t)
    record.add("summary", summary(tables))
    print("\n### Largest layer\n\n" + render_table(record.tables["summary"]))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
