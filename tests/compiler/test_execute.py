"""Golden executors: reuse == direct, bit for bit, on every layer."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mstbnn.compiler.execute import im2col, run
from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, Network, Threshold
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.compiler.schedule import Schedule


def random_forest_schedules(net, rng, negation):
    """Attach a random (not minimal) forest to every binary layer: the executor must follow any tree."""
    for _, layer in net.binary_layers():
        c = layer.out_channels
        perm = rng.permutation(c)
        parent = np.full(c, -1)
        for pos in range(1, c):
            if rng.random() < 0.8:
                parent[perm[pos]] = perm[rng.integers(0, pos)]
        negate = (rng.random(c) < 0.5) if negation else None
        layer.schedule = Schedule.from_parents(layer.weight_matrix, parent, negate)
    return net


def assert_traces_equal(a, b):
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        for field in ("sums", "bits", "values"):
            va, vb = getattr(la, field), getattr(lb, field)
            assert (va is None) == (vb is None)
            if va is not None:
                np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.classes, b.classes)


def naive_dense_sums(x_pm, w_bits):
    out = np.zeros((x_pm.shape[0], w_bits.shape[0]), dtype=np.int64)
    for b in range(x_pm.shape[0]):
        for j in range(w_bits.shape[0]):
            out[b, j] = sum(int(x_pm[b, k]) * (1 if w_bits[j, k] else -1) for k in range(w_bits.shape[1]))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    features=st.integers(1, 70),
    hidden=st.lists(st.integers(1, 20), min_size=0, max_size=2),
    classes=st.integers(1, 6),
    input_mode=st.sampled_from(["threshold", "int"]),
    signed=st.booleans(),
    clustered=st.booleans(),
    negation=st.booleans(),
)
def test_dense_reuse_equals_direct(seed, features, hidden, classes, input_mode, signed, clustered, negation):
    rng = np.random.default_rng(seed)
    net = random_dense_network(
        rng, features, tuple(hidden), classes, input_mode=input_mode, bits=8, signed=signed, clustered=clustered
    )
    random_forest_schedules(net, rng, negation)
    x = random_inputs(net, rng, 7)
    assert_traces_equal(run(net, x, "direct"), run(net, x, "reuse"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    c_in=st.integers(1, 3),
    size=st.integers(3, 9),
    c1=st.integers(1, 6),
    k=st.sampled_from([1, 2, 3]),
    stride=st.sampled_from([1, 2]),
    pad=st.sampled_from([0, 1]),
    pool=st.booleans(),
    input_mode=st.sampled_from(["threshold", "int"]),
    negation=st.booleans(),
)
def test_conv_reuse_equals_direct(seed, c_in, size, c1, k, stride, pad, pool, input_mode, negation):
    rng = np.random.default_rng(seed)
    out = (size + 2 * pad - k) // stride + 1
    pool = pool and out >= 2
    net = random_conv_network(
        rng, (c_in, size, size), ((c1, k, stride, pad, pool),), (5,), 3, input_mode=input_mode, bits=8
    )
    random_forest_schedules(net, rng, negation)
    x = random_inputs(net, rng, 4)
    assert_traces_equal(run(net, x, "direct"), run(net, x, "reuse"))


def test_direct_matches_naive_dot_products():
    rng = np.random.default_rng(1)
    w = rng.integers(0, 2, size=(5, 13)).astype(bool)
    t = rng.integers(0, 16, size=13)
    net = Network([InputQuantizer(shape=(13,), mode="threshold", thresholds=t, bits=4), BinaryDense(weights=w)])
    x = rng.integers(0, 16, size=(9, 13))
    x_pm = np.where(x >= t, 1, -1)
    np.testing.assert_array_equal(run(net, x).scores, naive_dense_sums(x_pm, w))


def test_conv_pads_binary_activations_with_minus_one():
    # One input channel, all bits 1 (+1); a 3x3 all-(+1) kernel with padding 1:
    # a corner window sees 4 real +1s and 5 pads of -1 -> sum -1.
    net = Network(
        [
            InputQuantizer(shape=(1, 3, 3), mode="threshold", thresholds=np.zeros((1, 3, 3), dtype=np.int64), bits=4),
            BinaryConv2d(weights=np.ones((1, 1, 3, 3), dtype=bool), stride=1, padding=1),
            Threshold(threshold=np.array([0]), direction=np.array([1])),
            BinaryDense(weights=np.ones((2, 9), dtype=bool)),
        ]
    )
    sums = run(net, np.ones((1, 1, 3, 3), dtype=np.int64)).layers[1].sums[0, 0]
    np.testing.assert_array_equal(sums, [[-1, 3, -1], [3, 9, 3], [-1, 3, -1]])


def test_int_input_conv_pads_with_zero():
    net = Network(
        [
            InputQuantizer(shape=(1, 2, 2), mode="int", bits=8, signed=True),
            BinaryConv2d(weights=np.ones((1, 1, 3, 3), dtype=bool), stride=1, padding=1),
        ]
    )
    x = np.array([[[[5, -3], [2, 7]]]])
    np.testing.assert_array_equal(run(net, x).scores[0, 0], [[11, 11], [11, 11]])


def test_threshold_direction_and_argmax_ties():
    net = Network(
        [
            InputQuantizer(shape=(2,), mode="int", bits=8, signed=True),
            BinaryDense(weights=np.array([[1, 1], [1, 1], [0, 0]], dtype=bool)),
            Threshold(threshold=np.array([3, 3, 0]), direction=np.array([1, -1, 1])),
            BinaryDense(weights=np.array([[1, 1, 1], [1, 1, 1]], dtype=bool)),
        ]
    )
    tr = run(net, np.array([[1, 2], [0, 0]]))
    np.testing.assert_array_equal(tr.layers[1].sums, [[3, 3, -3], [0, 0, 0]])
    np.testing.assert_array_equal(tr.layers[2].bits, [[1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(tr.classes, [0, 0])  # equal scores: lowest index wins


def test_im2col_layout_matches_weight_flattening():
    act = np.arange(2 * 4 * 4).reshape(1, 2, 4, 4)
    cols = im2col(act, 3, 1, 0, 0)
    np.testing.assert_array_equal(cols[0, 0, 0], act[0, :, 0:3, 0:3].reshape(-1))
    np.testing.assert_array_equal(cols[0, 1, 0], act[0, :, 1:4, 0:3].reshape(-1))


def test_rejects_wrong_input_shape():
    rng = np.random.default_rng(0)
    net = random_dense_network(rng, 8, (4,), 2)
    with pytest.raises(ValueError, match="expected \\(B, 8\\)"):
        run(net, np.zeros((3, 9), dtype=np.int64))
