"""`make demo` as a benchmark: run `mstbnn demo` and record its summary tables (the README's demo figures).

Runs ``python -m mstbnn demo -o WORK`` with the demo options given after
``--`` (none: the README's demo), times it, and records the two tables of
``WORK/summary.md``: ``accuracy`` (test accuracy, XNORs plain -> reuse,
tallest tree; lambda 0 against the MST lambda) and ``engines`` (LUTs, Fmax,
throughput on the smallest iCE40 that fits and on ecp5-25k, baseline and
reuse engine of the MST network; vectors bit-exact in Verilator).

Run (trains, simulates and places and routes: about 5 minutes on an idle 2-core machine)::

    nice python benchmarks/bench_demo.py [--work build/demo] [-- --epochs 40 ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _record import Recorder, add_record_argument, render_table, table_from_markdown


def summary_tables(text: str) -> list[list[str]]:
    """The markdown tables of summary.md, in order (each a list of lines)."""
    tables, current = [], []
    for line in text.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="build/demo", help="the demo's output directory (default %(default)s)")
    p.add_argument("demo_args", nargs="*", help="mstbnn demo options (after --)")
    add_record_argument(p, "demo")
    args = p.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    start = time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "mstbnn", "demo", "-o", args.work, *args.demo_args])
    if rc != 0:
        print(f"bench_demo: `mstbnn demo` exited {rc}; nothing recorded", file=sys.stderr)
        return rc
    print(f"demo: {time.monotonic() - start:.0f} s", flush=True)
    tables = summary_tables((Path(args.work) / "summary.md").read_text())
    if len(tables) != 2:
        print(f"bench_demo: expected 2 tables in {args.work}/summary.md, found {len(tables)}", file=sys.stderr)
        return 1
    for key, lines in zip(("accuracy", "engines"), tables):
        print(render_table(record.add(key, table_from_markdown(lines))) + "\n")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
