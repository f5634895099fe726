"""The folded flow model's fast-forward against its naive cycle-by-cycle replay.

The flow model itself is checked against the Amaranth simulation of the RTL
in test_network.py; here the walk skipping (:func:`_walk_skip`) must give
exactly what replaying every cycle gives, and must make the networks the
naive replay cannot finish (a folded LFC) cheap.
"""

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network
from mstbnn.hw.folded.network import FoldedEnginePlan
from mstbnn.hw.folded.timing import bottleneck_cycles, flow_model, flow_trace


def _timings(net, reuse, config):
    plan = FoldedEnginePlan(schedule_network(net, reuse=reuse), reuse=reuse, config=config)
    return [s.timing for s in plan.stages], plan.beats_per_image


def _networks():
    for seed in range(12):
        rng = np.random.default_rng(seed)
        if seed % 3 == 2:
            net = random_conv_network(rng)
        else:
            hidden = tuple(int(h) for h in rng.integers(1, 40, size=rng.integers(1, 3)))
            net = random_dense_network(rng, features=int(rng.integers(3, 48)), hidden=hidden,
                                       classes=int(rng.integers(2, 6)))
        yield seed, net


@pytest.mark.parametrize("config", [(1, 1), (2, 1), (3, 2), (8, 4)])
def test_fast_forward_equals_the_cycle_by_cycle_replay(config):
    skipped = 0
    for seed, net in _networks():
        stages, beats = _timings(net, reuse=seed % 2 == 0, config=config)
        for until_periodic in (False, True):
            naive = flow_trace(stages, beats, 8, until_periodic=until_periodic, fast_forward=False)
            fast = flow_trace(stages, beats, 8, until_periodic=until_periodic)
            assert fast == naive, (seed, until_periodic)
        skipped += max(s.get("walk", 0) for s in stages) > 3
    assert skipped  # long walks, where cycles are skipped, were among them


def test_lfc_shaped_flow_reaches_its_steady_state():
    """784-1024-1024-1024-10 folded at S = 64, G = 32: 15 k cycles per image, periodic only
    after about a thousand images (two walks drift against the output): 18 M cycles the
    naive replay's 5 M-step bound never reached."""
    rng = np.random.default_rng(3)
    net = random_dense_network(rng, features=784, hidden=(1024, 1024, 1024), classes=10, clustered=False,
                               sample=8)
    stages, beats = _timings(net, reuse=True, config=(64, 32))
    model = flow_model(stages, beats)
    assert model["initiation_interval"] == bottleneck_cycles(stages, beats)
    assert model["latencies"][0] == model["latency"]
    assert model["steady_from"] * model["initiation_interval"] > 5_000_000
    with pytest.raises(RuntimeError, match="did not finish"):
        flow_trace(stages, beats, 8, until_periodic=True, max_steps=100_000, fast_forward=False)
