"""Stream beats, packing and the golden expectation (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network
from mstbnn.sim.stimulus import expected_outputs, pack_beat, random_vectors, split_scores, to_beats


@pytest.mark.parametrize("bits, signed", [(1, False), (4, False), (5, True), (8, True)])
def test_random_vectors_cover_the_input_range(bits, signed):
    net = random_dense_network(np.random.default_rng(0), features=10, input_mode="int", bits=bits, signed=signed)
    x = random_vectors(net, 500, np.random.default_rng(1))
    lo, hi = net.input.value_range
    assert x.shape == (500, 10) and x.dtype == np.int64
    assert x.min() == lo and x.max() == hi


@pytest.mark.parametrize("width, signed", [(3, False), (4, True), (9, True)])
def test_pack_beat_places_value_f_at_f_times_w(width, signed):
    rng = np.random.default_rng(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    values = rng.integers(lo, hi, size=7, endpoint=True)
    word = pack_beat(values, width)
    assert 0 <= word < 1 << (7 * width)
    for f, v in enumerate(values):
        field = (word >> (f * width)) & ((1 << width) - 1)
        assert field == (int(v) & ((1 << width) - 1))
    # split_scores is the inverse for signed fields
    if signed:
        assert split_scores(word, 7, width) == [int(v) for v in values]


def test_dense_first_is_one_beat_conv_first_is_one_pixel_per_beat():
    rng = np.random.default_rng(0)
    dense = random_dense_network(rng, features=6)
    x = random_vectors(dense, 3, rng)
    assert np.array_equal(to_beats(dense, x), x[:, None, :])
    conv = random_conv_network(rng, input_shape=(3, 4, 5))
    x = random_vectors(conv, 2, rng)
    beats = to_beats(conv, x)
    assert beats.shape == (2, 20, 3)
    # raster order: beat y*W + x carries channel values x[:, :, y, x]
    assert np.array_equal(beats[1, 2 * 5 + 3], x[1, :, 2, 3])


def test_expected_outputs_agree_between_executors():
    rng = np.random.default_rng(3)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 6, 6), hidden=(5,)))
    x = random_vectors(net, 20, rng)
    reuse = expected_outputs(net, x, reuse=True)
    direct = expected_outputs(net, x, reuse=False)
    assert np.array_equal(reuse.scores, direct.scores) and np.array_equal(reuse.classes, direct.classes)
