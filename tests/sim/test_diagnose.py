"""Prefix networks and the bit probe used to locate a divergence (no simulator needed)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mstbnn.compiler import execute
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.sim.diagnose import locate_divergence, prefixes, probe_layer


@pytest.mark.parametrize("n_bits", [1, 5, 64])
def test_probe_reads_back_every_bit(n_bits):
    rng = np.random.default_rng(n_bits)
    probe = probe_layer(n_bits)
    x = rng.integers(0, 2, size=(20, n_bits)).astype(bool)
    sums = (x.astype(np.int64) * 2 - 1) @ (probe.weights.astype(np.int64) * 2 - 1).T
    assert np.array_equal((sums[:, :1] - sums[:, 1:]) // 2 > 0, x)
    # the schedule makes it cheap: one root, one differing position per child
    assert probe.schedule.xnors(n_bits) == 2 * n_bits


def _conv_net(rng):
    net = random_conv_network(rng, input_shape=(2, 6, 6), convs=((3, 3, 1, 1, True), (4, 3, 1, 0, False)), hidden=(5,), classes=3)
    return schedule_network(net)


def test_prefixes_cover_every_hidden_binary_layer_and_match_the_golden_trace():
    rng = np.random.default_rng(2)
    net = _conv_net(rng)
    x = random_inputs(net, rng, 7)
    full = execute.run(net, x)
    pre = prefixes(net)
    hidden = [i for i, _ in net.binary_layers()[:-1]]
    assert [i for i, _, _ in pre] == hidden
    for i, kind, prefix in pre:
        scores = execute.run(prefix, x, mode="reuse").scores
        if kind == "dense":
            assert np.array_equal(scores, full.layers[i].sums)
        else:
            # the conv stage's output bits are those feeding the next binary layer
            nxt = next(j for j, _ in net.binary_layers() if j > i)
            stage_bits = full.layers[nxt - 1].bits.reshape(len(x), -1)
            assert np.array_equal((scores[:, :1] - scores[:, 1:]) // 2 > 0, stage_bits)


def _flip(net, layer, channel):
    bad = copy.deepcopy(net)
    w = bad.layers[layer].weights
    w.reshape(w.shape[0], -1)[channel, 0] ^= True
    return bad


@pytest.mark.parametrize("broken_layer, channel", [(1, 2), (4, 1), (6, 3), (8, 1)])
def test_locate_divergence_names_the_broken_layer_and_channel(broken_layer, channel):
    rng = np.random.default_rng(5)
    net = _conv_net(rng)
    assert [l.kind for l in net.layers] == [
        "input", "conv2d", "threshold", "maxpool", "conv2d", "threshold", "dense", "threshold", "dense"]

    def simulate_prefix(prefix, tag):
        # 'hardware' = the golden executor with one weight flipped, in whatever part of the net the prefix holds
        i = int(tag[1:])
        original = len(prefix.layers) - (1 if net.layers[i].kind == "conv2d" else 0)
        hw = _flip(prefix, broken_layer, channel) if broken_layer < original else prefix
        return None, execute.run(hw, x, mode="direct").scores

    broken = _flip(net, broken_layer, channel)
    for seed in range(200):  # an input on which the flip reaches the scores
        x = random_inputs(net, np.random.default_rng(seed), 1)
        diff = np.flatnonzero(execute.run(broken, x).scores[0] != execute.run(net, x).scores[0])
        if diff.size:
            break
    assert diff.size
    where = locate_divergence(net, x, simulate_prefix, int(diff[0]))
    kind = net.layers[broken_layer].kind
    assert where.startswith(f"layer {broken_layer} ({kind}"), where
    assert f"channel {channel}" in where, where
