"""Whole networks in the Amaranth simulator against the golden executor, with random stalls."""

from __future__ import annotations

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.ir import BinaryDense, InputQuantizer, Network
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.compiler.schedule import Schedule
from mstbnn.errors import UserError
from mstbnn.hw.network import NetworkEngine, UnrolledEnginePlan
from tests.hw.streams import pack, run_stream, unpack


def _beats(engine, net, x):
    if engine.beats_per_image == 1:
        return [pack(v.ravel(), engine.input_width) for v in x]
    _, h, w = net.layers[0].shape
    return [pack(img[:, r, c], engine.input_width) for img in x for r in range(h) for c in range(w)]


def check_engine(net, x, *, seed=0, in_prob=0.7, out_prob=0.6, **options):
    """Run x through the engine with random stalls; compare scores and classes bit for bit."""
    engine = NetworkEngine(net, **options)
    trace = run(net, x)
    out, _, _ = run_stream(engine, _beats(engine, net, x), len(x), in_prob=in_prob, out_prob=out_prob, seed=seed,
                           out_ports=("out_class", "out_scores"))
    scores = np.array([unpack(s, engine.classes, engine.score_width) for _, s in out])
    classes = np.array([c for c, _ in out])
    np.testing.assert_array_equal(scores, trace.scores)
    np.testing.assert_array_equal(classes, trace.classes)
    return engine


def check_cycle_model(engine, net, x):
    """No stalls: measured latency and II equal the model's."""
    beats = _beats(engine, net, x)
    _, in_cycles, out_cycles = run_stream(engine, beats, len(x), out_ports=("out_class",))
    per = engine.beats_per_image
    last_beats = in_cycles[per - 1 :: per]
    assert out_cycles[0] - last_beats[0] == engine.latency
    assert max(np.diff(out_cycles)[1:]) == engine.initiation_interval


def chain_schedule(weights, rng, negation=True):
    """A deep forest: every channel hangs off the previous one (height C - 1), random negation edges."""
    c = weights.shape[0]
    parent = np.arange(-1, c - 1)
    negate = (rng.random(c) < 0.4) if negation else None
    return Schedule.from_parents(weights.astype(bool), parent, negate)


# --------------------------------------------------------------------------- dense


@pytest.mark.parametrize("input_mode,bits,signed", [("threshold", 4, False), ("int", 3, True), ("int", 2, False)])
@pytest.mark.parametrize("reuse", [True, False])
def test_dense_network_bit_exact_with_stalls(input_mode, bits, signed, reuse):
    rng = np.random.default_rng(bits * 7 + reuse)
    net = random_dense_network(rng, features=10, hidden=(12, 8), classes=4, input_mode=input_mode, bits=bits, signed=signed)
    net = schedule_network(net, negation=True)
    x = random_inputs(net, rng, 24)
    engine = check_engine(net, x, reuse=reuse, seed=bits)
    check_cycle_model(engine, net, x[:6])
    assert engine.initiation_interval == 1
    assert engine.latency == sum(d + 1 for d in engine.stage_depths)


@pytest.mark.parametrize("classes", [1, 2, 5, 10, 17])
def test_pipelined_argmax_many_classes_with_stalls(classes):
    """The argmax tree registers every two levels: ties, stalls and the cycle model across class counts."""
    rng = np.random.default_rng(classes)
    net = schedule_network(random_dense_network(rng, features=6, hidden=(8,), classes=classes, clustered=False))
    x = random_inputs(net, rng, 30)
    engine = check_engine(net, x, reuse=True, seed=classes)
    check_cycle_model(engine, net, x[:6])
    levels = (classes - 1).bit_length()  # compare levels of the tree
    assert engine.stages[-1].depth == 1 + max(0, -(-levels // 2) - 1)


@pytest.mark.parametrize("g", [1, 2, 3])
@pytest.mark.parametrize("corrections", ["early", "late", "inline"])
def test_deep_chain_schedules_with_negation(g, corrections):
    """Height C - 1 trees, negation edges, several tree levels per stage, both correction placements."""
    rng = np.random.default_rng(g * 13 + len(corrections))
    net = random_dense_network(rng, features=9, hidden=(10,), classes=5, input_mode="int", bits=3, signed=True)
    for _, layer in net.binary_layers():
        layer.schedule = chain_schedule(layer.weight_matrix, rng)
    x = random_inputs(net, rng, 16)
    engine = check_engine(net, x, tree_levels_per_stage=g, corrections=corrections, seed=g)
    hidden = engine.stages[0]
    assert hidden.depth == hidden.root_stage + (9 - 1) // g + 1  # level 9 is the deepest of 10 channels
    check_cycle_model(engine, net, x[:5])


@pytest.mark.parametrize("fuse_leaves", [True, False])
def test_leaf_fusion_on_and_off(fuse_leaves):
    """Many leaves (a clustered layer): fused delta+threshold units and separate ones agree with the executor."""
    rng = np.random.default_rng(21)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(24,), classes=3), negation=True)
    engine = check_engine(net, random_inputs(net, rng, 12), fuse_leaves=fuse_leaves)
    assert (len(engine.stages[0].fused) > 5) == fuse_leaves


def test_worst_case_sums_reach_both_ends():
    """All inputs agreeing / disagreeing with a class's weights give scores N and -N exactly."""
    rng = np.random.default_rng(3)
    n, classes = 11, 3
    w = rng.integers(0, 2, size=(classes, n)).astype(bool)
    w[1] = ~w[0]  # a negation edge at full distance
    net = Network(layers=[InputQuantizer(shape=(n,), mode="threshold", thresholds=np.ones(n, dtype=np.int64), bits=1),
                          BinaryDense(weights=w)])
    net = schedule_network(net, negation=True)
    x = np.concatenate([w, ~w]).astype(np.int64)
    for reuse in (True, False):
        engine = check_engine(net, x, reuse=reuse)
        assert engine.score_width == 5  # [-11, 11] needs exactly 5 signed bits
    trace = run(net, x)
    assert trace.scores[np.arange(classes), np.arange(classes)].tolist() == [n] * classes
    assert trace.scores[classes + np.arange(classes), np.arange(classes)].tolist() == [-n] * classes


def test_worst_case_integer_inputs():
    """Multi-bit first layer: extreme inputs reach the exact sum range without overflow."""
    rng = np.random.default_rng(4)
    n, bits = 7, 4
    w = rng.integers(0, 2, size=(2, n)).astype(bool)
    net = Network(layers=[InputQuantizer(shape=(n,), mode="int", bits=bits, signed=True), BinaryDense(weights=w)])
    net = schedule_network(net)
    lo, hi = -8, 7
    x = np.stack([np.where(w[0], hi, lo), np.where(w[0], lo, hi), np.where(w[1], hi, lo), np.where(w[1], lo, hi)])
    engine = check_engine(net, x)
    assert engine.score_width == 7  # sums in [-56, 56]
    scores = run(net, x).scores
    bounds = engine.stages[0].y_range
    assert [scores[0, 0], scores[1, 0], scores[2, 1], scores[3, 1]] == [bounds[0][1], bounds[0][0], bounds[1][1], bounds[1][0]]


# --------------------------------------------------------------------------- conv


CONV_CASES = {
    "pad-pool-two-convs": dict(input_shape=(2, 6, 6), convs=((4, 3, 1, 1, True), (5, 3, 1, 1, False)), hidden=(6,)),
    "stride2-nopad": dict(input_shape=(1, 7, 7), convs=((3, 3, 2, 0, False),), hidden=()),
    "pad2-pool": dict(input_shape=(1, 5, 5), convs=((3, 2, 1, 2, True),), hidden=(4,)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
@pytest.mark.parametrize("input_mode", ["threshold", "int"])
@pytest.mark.parametrize("reuse", [True, False])
def test_conv_network_bit_exact_with_stalls(case, input_mode, reuse):
    rng = np.random.default_rng(len(case) + 2 * reuse)
    net = random_conv_network(rng, classes=3, input_mode=input_mode, bits=3, **CONV_CASES[case])
    net = schedule_network(net, negation=True)
    x = random_inputs(net, rng, 4)
    engine = check_engine(net, x, reuse=reuse, seed=len(case))
    check_cycle_model(engine, net, x[:4])


def test_conv_first_ii_is_padded_raster():
    rng = np.random.default_rng(9)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 6, 5), convs=((3, 3, 1, 1, False),), classes=2))
    engine = UnrolledEnginePlan(net)
    assert engine.initiation_interval == (6 + 2) * (5 + 2)


def test_position_dependent_input_thresholds():
    """Conv-first threshold quantiser with a different threshold per pixel."""
    rng = np.random.default_rng(11)
    net = random_conv_network(rng, input_shape=(2, 4, 4), convs=((3, 3, 1, 1, False),), classes=2, bits=3)
    assert len(np.unique(net.layers[0].thresholds)) > 1
    net = schedule_network(net)
    check_engine(net, random_inputs(net, rng, 3))


# --------------------------------------------------------------------------- errors


def test_reuse_without_schedule_is_a_user_error():
    rng = np.random.default_rng(0)
    net = random_dense_network(rng, features=4, hidden=(), classes=2)
    with pytest.raises(UserError, match="schedule"):
        UnrolledEnginePlan(net)
    UnrolledEnginePlan(net, reuse=False)  # the baseline needs no schedule
