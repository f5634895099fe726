"""Packed weight store: exact size against the cost model, lossless round trip, field layout."""

import numpy as np
import pytest

from mstbnn.compiler.cost import storage_bits
from mstbnn.compiler.mst import build_schedule
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.random import similar_weights
from mstbnn.compiler.storage import StorageLayout, pack_layer, storage_edge_cost, to_words, unpack_layer


def _weights(seed, c, n, clustered):
    rng = np.random.default_rng(seed)
    if clustered:
        return similar_weights(rng, c, n, flip=0.1)
    return rng.integers(0, 2, size=(c, n)).astype(bool)


@pytest.mark.parametrize("c,n", [(1, 1), (2, 3), (5, 16), (12, 27), (33, 64), (64, 100)])
@pytest.mark.parametrize("variant", ["plain", "mst", "negation", "depth2"])
@pytest.mark.parametrize("clustered", [True, False])
def test_size_equals_cost_model_and_round_trip_is_exact(c, n, variant, clustered):
    w = _weights(c * 1000 + n, c, n, clustered)
    if variant == "plain":
        sched = Schedule.plain(c)
    elif variant == "mst":
        sched = build_schedule(w)
    elif variant == "negation":
        # Invert some channels so negation edges are really taken.
        w = w ^ (np.arange(c) % 3 == 1)[:, None]
        sched = build_schedule(w, negation=True)
    else:
        sched = build_schedule(w, max_depth=2)
    packed = pack_layer(w, sched)
    assert packed.n_bits == storage_bits(sched, n)
    w2, sched2 = unpack_layer(packed)
    assert np.array_equal(w2, w)
    assert np.array_equal(sched2.parent, sched.parent)
    assert np.array_equal(sched2.negate, sched.negate)
    assert np.array_equal(sched2.order, sched.order)
    for a, b in zip(sched2.positions, sched.positions):
        assert np.array_equal(a, b)


def test_negation_edges_really_occur_in_the_parametrised_case():
    w = _weights(7, 12, 27, True)
    w = w ^ (np.arange(12) % 3 == 1)[:, None]
    assert build_schedule(w, negation=True).negate.any()


def test_fields_by_hand():
    # Channel 0 root over N = 5; channel 1 differs at positions 1 and 4; channel 2 child of 1 with d = 0.
    w = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=bool)
    sched = Schedule.from_parents(w, np.array([-1, 0, 1]))
    packed = pack_layer(w, sched)
    lay = packed.layout
    assert (lay.parent_bits, lay.length_bits, lay.negate_bits, lay.index_bits) == (2, 3, 0, 3)
    expect = [0, 1, 0, 1, 1, 0]  # root flag, weights
    expect += [1, 0, 0, 0, 1, 0]  # child flag, parent slot 0, d = 2
    expect += [1, 0, 0, 1]  # index 1, weight bit 1
    expect += [0, 0, 1, 1]  # index 4, weight bit 1
    expect += [1, 1, 0, 0, 0, 0]  # child flag, parent slot 1, d = 0
    assert packed.bits.astype(int).tolist() == expect
    assert packed.record_start.tolist() == [0, 6, 20]
    assert packed.n_bits == storage_bits(sched, 5) == 3 + 5 + 2 * 5 + 2 * 4


def test_words_are_little_endian_and_padded():
    bits = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1], dtype=bool)
    assert to_words(bits, 4) == [0b1101, 0b1000, 0b0001]
    assert to_words(bits, 4, extra_words=2) == [0b1101, 0b1000, 0b0001, 0, 0]


def test_corrupt_stream_is_refused():
    w = _weights(3, 6, 10, True)
    packed = pack_layer(w, build_schedule(w))
    cut = type(packed)(bits=packed.bits[:-1], layout=packed.layout, order=packed.order, record_start=packed.record_start)
    with pytest.raises(ValueError):
        unpack_layer(cut)


def test_layout_widths_follow_c_and_n():
    sched = Schedule.plain(17)
    lay = StorageLayout.of(sched, 1152)
    assert (lay.parent_bits, lay.length_bits, lay.index_bits, lay.entry_bits) == (5, 11, 11, 12)


@pytest.mark.parametrize("flip", [0.01, 0.05, 0.3])
def test_storage_weighted_forest_never_stores_more_than_plain_or_the_xnor_tree(flip):
    rng = np.random.default_rng(int(flip * 100))
    c, n = 24, 200
    w = similar_weights(rng, c, n, flip=flip)
    best = build_schedule(w, edge_cost=storage_edge_cost(n, c))
    assert storage_bits(best, n) <= storage_bits(Schedule.plain(c), n)
    assert storage_bits(best, n) <= storage_bits(build_schedule(w), n)
    # the edge cost is the record size exactly: the forest's cost is its stream length
    packed = pack_layer(w, best)
    w2, _ = unpack_layer(packed)
    assert np.array_equal(w2, w)
    if flip == 0.01:
        assert storage_bits(best, n) < storage_bits(Schedule.plain(c), n)  # real compression at small d
