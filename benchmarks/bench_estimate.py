"""Resource estimate against yosys on whole small engines: both engines, both trees, ECP5 and iCE40.

Usage: python benchmarks/bench_estimate.py [--fit] [--engines unrolled,folded]

Each design is synthesised as ``mstbnn synth`` does it (the engine in its pin
harness, ``SYNTH_OPTIONS`` of the family, yosys only) and its LUT sites and
flip-flops are compared with the fit check's figures
(:func:`mstbnn.boards.synth.harness_fit`). Table ``designs`` lists every
design; table ``summary`` the worst error per engine and family, which
``ESTIMATE_ERROR`` in mstbnn/hw/estimate.py quotes in fit refusals.

``--fit`` also prints the non-negative least-squares iCE40 coefficients of
the unrolled LUT model (``COEFF["ice40"]`` in mstbnn/compiler/lutcost.py)
over these designs, with each design's leave-one-out error.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import Column, Recorder, Table, add_record_argument, render_table  # noqa: E402

from mstbnn.boards.synth import harness_fit, synthesize  # noqa: E402
from mstbnn.compiler.compile import schedule_network  # noqa: E402
from mstbnn.compiler.random import random_conv_network, random_dense_network  # noqa: E402
from mstbnn.devices import get_device  # noqa: E402
from mstbnn.hw.spec import EngineSpec, build_engine, plan_engine  # noqa: E402

DEVICES = {"ecp5": "ecp5-25k", "ice40": "ice40-hx8k"}
OPTIONS = {"unrolled": {}, "folded": {"config": [16, 2]}}  # folded: SIMD lanes, gather width of every layer

COLUMNS = [Column("design", "design"), Column("engine", "engine"), Column("tree", "tree"),
           Column("family", "family"),
           Column("est_luts", "LUT est", "right"), Column("yosys_luts", "LUT yosys", "right"),
           Column("lut_err", "LUT error", "right", "{:+.1%}"),
           Column("est_ffs", "FF est", "right"), Column("yosys_ffs", "FF yosys", "right"),
           Column("ff_err", "FF error", "right", "{:+.1%}"), Column("yosys_s", "yosys s", "right", "{:.1f}")]
SUMMARY = [Column("engine", "engine"), Column("family", "family"), Column("designs", "designs", "right"),
           Column("lut_worst", "worst LUT error", "right", "{:.1%}"),
           Column("ff_worst", "worst FF error", "right", "{:.1%}")]


def designs():
    """(name, network): the calibration set, dense and conv, threshold and integer inputs."""
    def rng(seed):
        return np.random.default_rng(seed)

    yield "16-24-4 int3", random_dense_network(rng(1), 16, (24,), 4, input_mode="int", bits=3)
    yield "32-64-10", random_dense_network(rng(2), 32, (64,), 10)
    yield "64-32-32-10", random_dense_network(rng(3), 64, (32, 32), 10)
    yield "8x8 c4P-10", random_conv_network(rng(4), (1, 8, 8), ((4, 3, 1, 1, True),), classes=10)
    yield "8x8 c8-c16P-10", random_conv_network(rng(5), (1, 8, 8), ((8, 3, 1, 1, False), (16, 3, 1, 1, True)),
                                                classes=10)


def engine_of(net, engine: str, reuse: bool):
    return build_engine(net, EngineSpec(engine, reuse=reuse, options=OPTIONS[engine]))


def measure(net, engine: str, reuse: bool, family: str, build_dir) -> dict:
    """The fit check's LUT sites and FFs beside yosys' counts of the same harnessed engine."""
    eng = engine_of(net, engine, reuse)
    device = get_device(DEVICES[family])
    fit = harness_fit(eng.plan, device)
    t = time.perf_counter()
    report = synthesize(eng, device, build_dir, place=False, stream=io.StringIO())
    got_luts, got_ffs = report["resources"]["lut"]["used"], report["resources"]["ff"]["used"]
    return {"est_luts": fit["luts"], "yosys_luts": got_luts, "lut_err": (fit["luts"] - got_luts) / got_luts,
            "est_ffs": fit["ffs"], "yosys_ffs": got_ffs, "ff_err": (fit["ffs"] - got_ffs) / got_ffs,
            "yosys_s": time.perf_counter() - t, "cells": report["cells"]}


def fit_ice40(rows: list[dict], nets: dict) -> None:
    """NNLS of SB_LUT4 and SB_CARRY on the unrolled model's features; leave-one-out errors."""
    from scipy.optimize import nnls

    from mstbnn.compiler.lutcost import FEATURES
    from mstbnn.hw.estimate import network_features

    picked = [r for r in rows if r["engine"] == "unrolled" and r["family"] == "ice40"]
    a = []
    for r in picked:
        total = network_features(plan_engine(nets[r["design"]], EngineSpec("unrolled", reuse=r["tree"] == "reuse")))
        a.append([total.get(f, 0) for f in FEATURES])
    a = np.array(a, dtype=float)
    for target, cell in (("luts", "SB_LUT4"), ("carry", "SB_CARRY")):
        y = np.array([r["cells"].get(cell, 0) for r in picked], dtype=float)
        coef, _ = nnls(a, y)
        print(f"{target}: {{{', '.join(f'{f!r}: {c:.3f}' for f, c in zip(FEATURES, coef))}}}")
        for k, r in enumerate(picked):
            keep = np.arange(len(picked)) != k
            c_k, _ = nnls(a[keep], y[keep])
            print(f"  {r['design']:16} {r['tree']:5} in-sample {(a[k] @ coef - y[k]) / y[k]:+.1%}, "
                  f"left out {(a[k] @ c_k - y[k]) / y[k]:+.1%}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="unrolled,folded", help="engines to measure (default %(default)s)")
    p.add_argument("--families", default="ecp5,ice40", help="device families (default %(default)s)")
    p.add_argument("--fit", action="store_true", help="print the iCE40 unrolled LUT coefficients fitted here")
    add_record_argument(p, "estimate")
    args = p.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    families = [f for f in args.families.split(",") if f]
    record = Recorder(args.record, __file__, argv)
    nets = {name: schedule_network(net) for name, net in designs()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, net in nets.items():
            for engine in engines:
                for reuse in (False, True):
                    for family in families:
                        row = {"design": name, "engine": engine, "tree": "reuse" if reuse else "plain",
                               "family": family}
                        row.update(measure(net, engine, reuse, family, Path(tmp) / f"{len(rows)}"))
                        rows.append(row)
                        print(f"{name:16} {engine:8} {row['tree']:5} {family:5} LUT {row['est_luts']:6,} / "
                              f"{row['yosys_luts']:6,} {row['lut_err']:+6.1%}  FF {row['est_ffs']:6,} / "
                              f"{row['yosys_ffs']:6,} {row['ff_err']:+6.1%}  ({row['yosys_s']:.1f} s)", flush=True)
    if args.fit:
        fit_ice40(rows, nets)
    table = record.add("designs", Table(COLUMNS))
    table.rows += [{k: v for k, v in r.items() if k != "cells"} for r in rows]
    summary = record.add("summary", Table(SUMMARY))
    for engine in engines:
        for family in families:
            mine = [r for r in rows if r["engine"] == engine and r["family"] == family]
            summary.add(engine=engine, family=family, designs=len(mine),
                        lut_worst=max(abs(r["lut_err"]) for r in mine), ff_worst=max(abs(r["ff_err"]) for r in mine))
    print()
    print(render_table(summary))
    record.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
