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
from mstbnn.hw.network import NetworkEngine


@pytest.mark.parametrize("corrections", ["early", "late", "inline"])
@pytest.mark.parametrize("reuse", [True, False])
def test_flipflop_count_matches_elaboration(corrections, reuse):
    rng = np.random.default_rng(5)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(24,), classes=4, input_mode="int", bits=3))
    engine = NetworkEngine(net, reuse=reuse, corrections=corrections)
    Fragment.get(engine, None)
    for stage in engine.stages[:-1]:
        front = stage.n * stage.elem_bits + 1  # vector front: input register and its valid bit
        assert stage_features(stage)["ffs_generated"] - front == stage.elaborated_flipflops


def test_network_estimate_families():
    rng = np.random.default_rng(6)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(16,), classes=4))
    engine = NetworkEngine(net)
    for family in ("ice40", "ecp5"):
        est = engine.resource_estimate(family)
        assert {"luts", "carry", "ffs", "lut4_equiv"} <= set(est) and est["ffs"] > 0
    with pytest.raises(UserError, match="family"):
        engine.resource_estimate("virtex")


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
