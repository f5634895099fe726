"""Fit the ECP5 LUT / carry coefficients of mstbnn.hw.estimate to bench_hw_layer.py results.

Usage: python benchmarks/bench_hw_fit.py build/bench_hw/*.json

Prints the non-negative least-squares coefficients per feature and the
estimate-vs-yosys error of every design with the coefficients currently in
mstbnn/hw/estimate.py.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from scipy.optimize import nnls

from mstbnn.hw.estimate import _FEATURES, _cost


def refresh_features(row: dict) -> dict:
    """Recompute a design's features with the current generator (same seed 0 as the bench)."""
    from mstbnn.compiler.ir import Threshold
    from mstbnn.compiler.mst import build_schedule
    from mstbnn.compiler.random import similar_weights
    from mstbnn.compiler.schedule import Schedule
    from mstbnn.hw.estimate import stage_features
    from mstbnn.hw.stage_plan import BinaryStagePlan

    n, c, flip, tag = row["n"], row["c"], row["flip"], row["tree"]
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, size=(c, n)).astype(bool) if flip >= 0.5 else similar_weights(rng, c, n, flip=flip)
    thr = Threshold(threshold=np.zeros(c, dtype=np.int64), direction=np.ones(c, dtype=np.int64))
    sched = Schedule.plain(c) if tag == "plain" else build_schedule(w, max_depth=None if tag == "none" else int(tag))
    variant = row["variant"]
    corr, g = variant.split("_")[0], int(variant.split("_")[1][1:])
    plan = BinaryStagePlan(w, sched, front={"kind": "vector"}, threshold=thr, corrections=corr,
                           tree_levels_per_stage=g, fuse_leaves="nofuse" not in variant)
    return dict(row, **{f"feat_{k}": v for k, v in stage_features(plan).items()})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", metavar="JSON", help="bench_hw_layer.py result files (build/bench_hw/*.json)")
    args = ap.parse_args(argv)
    rows = [refresh_features(r) for p in args.results for r in json.loads(open(p).read()) if "variant" in r]
    a = np.array([[r[f"feat_{f}"] for f in _FEATURES] for r in rows], dtype=float)
    for target in ("luts", "carry"):
        y = np.array([r[f"syn_{target}"] for r in rows], dtype=float)
        coef, _ = nnls(a, y)
        print(target, {f: round(float(c), 3) for f, c in zip(_FEATURES, coef)})
    print("design: (estimate, yosys, error %) with the coefficients in mstbnn/hw/estimate.py")
    for r in rows:
        est = _cost({k[5:]: v for k, v in r.items() if k.startswith("feat_")}, "ecp5")
        cmp = {k: (est[k], r[f"syn_{k}"], round(100 * (est[k] - r[f"syn_{k}"]) / max(1, r[f"syn_{k}"]), 1))
               for k in ("luts", "carry", "ffs", "lut4_equiv")}
        print(f"n{r.get('n')} c{r.get('c')} flip {r.get('flip')} {r.get('variant')} {r['tree']}", cmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
