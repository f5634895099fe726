"""One folded layer: bit-exact against the golden layer sums, cycles per window equal to the formula."""

import math

import numpy as np
import pytest

from mstbnn.compiler.execute import _layer_sums
from mstbnn.compiler.ir import Threshold
from mstbnn.compiler.mst import build_schedule
from mstbnn.compiler.random import similar_weights
from mstbnn.compiler.schedule import Schedule
from mstbnn.hw.folded.plan import FoldedStagePlan, LayerPlan
from mstbnn.hw.folded.stage import FoldedStage
from tests.hw.streams import pack, run_stream, unpack


def _weights(rng, c, n, variant):
    w = similar_weights(rng, c, n, flip=0.1)
    if variant == "duplicates":
        w[1::3] = w[0::3][: len(w[1::3])]  # exact copies: children with d = 0
    if variant == "negation":
        w = w ^ (np.arange(c) % 2 == 1)[:, None]
    return w


def _schedule(w, variant):
    if variant == "plain":
        return Schedule.plain(w.shape[0])
    if variant == "chain":
        # a deliberately deep tree: channel j reuses j - 1
        return Schedule.from_parents(w, np.arange(w.shape[0]) - 1)
    return build_schedule(w, negation=variant == "negation")


def _formula(sched, n, s, g):
    """cycles per window = roots * ceil(N / S) + sum over children of max(1, ceil(d / G))"""
    roots = int((sched.parent < 0).sum())
    children = [len(p) for p, par in zip(sched.positions, sched.parent) if par >= 0]
    return roots * math.ceil(n / s) + sum(max(1, math.ceil(d / g)) for d in children)


SHAPES = [(6, 10, 4, 1), (12, 27, 9, 2), (16, 64, 64, 3), (5, 7, 2, 4)]
VARIANTS = ["mst", "plain", "chain", "duplicates", "negation"]
# one channel, one cycle per window (W = 1): the shortest window the stage supports
CASES = [(v, *shape) for v in VARIANTS for shape in SHAPES] + [("plain", 1, 5, 8, 1), ("mst", 1, 5, 8, 1)]


@pytest.mark.parametrize("variant,c,n,s,g", CASES)
@pytest.mark.parametrize("scores", [False, True])
def test_layer_bit_exact_and_cycles_match_formula(variant, c, n, s, g, scores):
    rng = np.random.default_rng(c * 100 + n + s)
    w = _weights(rng, c, n, variant)
    sched = _schedule(w, variant)
    if variant == "negation":
        assert sched.negate.any()
    if variant == "duplicates":
        assert any(len(p) == 0 for p, par in zip(sched.positions, sched.parent) if par >= 0)
    plan = LayerPlan(w, sched, s, g)
    assert plan.window_cycles == _formula(sched, n, s, g)
    x_bits = rng.integers(0, 2, size=(10, n)).astype(bool)
    x_bits[0] = True
    x_bits[1] = False
    sums = _layer_sums(x_bits.astype(np.int64) * 2 - 1, w, None, "direct")
    if scores:
        stage = FoldedStage(FoldedStagePlan(plan, front={"kind": "vector"}))
        want = sums.tolist()
    else:
        t = rng.integers(-n // 2, n // 2 + 1, c)
        t[0] = -n - 5  # a threshold below the range: constant 1
        d = np.where(rng.random(c) < 0.7, 1, -1)
        stage = FoldedStage(FoldedStagePlan(plan, front={"kind": "vector"}, threshold=Threshold(threshold=t, direction=d)))
        want = np.where(d > 0, sums >= t, sums <= t).astype(int).tolist()
    beats = [pack(row, 1) for row in x_bits]

    def decode(word):
        return unpack(word, c, stage.plan.score_width) if scores else [(word >> j) & 1 for j in range(c)]

    # backpressure and gaps on both ends: every output, in order, exactly once
    outs, _, _ = run_stream(stage, beats, len(beats), in_prob=0.6, out_prob=0.5, seed=c)
    assert [decode(o[0]) for o in outs] == want
    # no stalls: a new window every W + 1 cycles (4 when W <= 2); W + 4 from input handshake to output
    outs, ins, out_cycles = run_stream(stage, beats, len(beats))
    assert [decode(o[0]) for o in outs] == want
    gaps = {b - a for a, b in zip(out_cycles, out_cycles[1:])}
    walk = plan.window_cycles
    assert gaps == {max(4, walk + 1)}
    latencies = [o - i for i, o in zip(ins, out_cycles)]
    assert latencies[0] == walk + 4
    if walk > 2:  # (with W <= 2 a window waits for the previous output register in steady state)
        assert set(latencies) == {walk + 4}
