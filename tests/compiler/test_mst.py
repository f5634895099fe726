"""Tests of the MST scheduler: distances, minimality, height, depth limits, costs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import minimum_spanning_tree

from mstbnn.compiler import mst
from mstbnn.compiler.mst import (
    build_schedule,
    hamming_matrix,
    min_forest_cost,
    mst_weight,
    schedule_cost,
)
from mstbnn.errors import UserError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# Reference implementations (deliberately naive)
# ---------------------------------------------------------------------------


def naive_hamming(bits: np.ndarray) -> np.ndarray:
    c = bits.shape[0]
    out = np.zeros((c, c), dtype=np.int64)
    for i in range(c):
        for j in range(c):
            out[i, j] = sum(int(a != b) for a, b in zip(bits[i], bits[j]))
    return out


def effective_weights(bits: np.ndarray, negation: bool) -> np.ndarray:
    n = bits.shape[1]
    d = naive_hamming(bits) if bits.shape[0] * bits.shape[1] <= 4000 else hamming_matrix(bits)
    return np.minimum(d, n - d) if negation else d


def scipy_mst_weight(w: np.ndarray) -> int:
    """Minimum spanning tree weight of a complete graph with weights w (zeros allowed).

    scipy treats 0 as a missing edge, so shift every off-diagonal weight by
    one and take the C - 1 edges' shift back off.
    """
    c = w.shape[0]
    shifted = w + 1
    np.fill_diagonal(shifted, 0)
    return int(round(minimum_spanning_tree(shifted).sum())) - (c - 1)


def scipy_forest_cost(cost: np.ndarray, root_cost: int) -> int:
    """Least forest cost with a virtual source joined to every channel by root_cost."""
    c = cost.shape[0]
    aug = np.zeros((c + 1, c + 1), dtype=np.int64)
    aug[:c, :c] = cost
    aug[c, :c] = root_cost
    aug[:c, c] = root_cost
    return scipy_mst_weight(aug)


def plain_prim_height(w: np.ndarray) -> int:
    """Height of the textbook Prim tree from channel 0 (strict <, lowest index on ties)."""
    c = w.shape[0]
    inside = [False] * c
    key = [None] * c
    par = [-1] * c
    level = [0] * c
    u = 0
    for _ in range(c):
        inside[u] = True
        level[u] = 0 if par[u] < 0 else level[par[u]] + 1
        for v in range(c):
            if not inside[v] and (key[v] is None or w[u, v] < key[v]):
                key[v] = int(w[u, v])
                par[v] = u
        rest = [v for v in range(c) if not inside[v]]
        if not rest:
            break
        u = min(rest, key=lambda v: (key[v], v))
    return max(level)


def check_schedule_consistent(sched, bits: np.ndarray) -> None:
    """Positions are the true correction sets; negation only where it is the shorter one."""
    n = bits.shape[1]
    for j, p in enumerate(sched.parent.tolist()):
        if p < 0:
            assert sched.level[j] == 0 and len(sched.positions[j]) == 0 and not sched.negate[j]
            continue
        assert sched.level[j] == sched.level[p] + 1
        if sched.negate[j]:
            expect = np.flatnonzero(bits[j] == bits[p])
        else:
            expect = np.flatnonzero(bits[j] != bits[p])
        np.testing.assert_array_equal(sched.positions[j], expect)
    # Every parent precedes its children in computation order.
    rank = np.empty(sched.n_channels, dtype=np.int64)
    rank[sched.order] = np.arange(sched.n_channels)
    kids = np.flatnonzero(sched.parent >= 0)
    assert np.all(rank[sched.parent[kids]] < rank[kids])


# ---------------------------------------------------------------------------
# Weight strategies: random, clustered (small distances, many ties), prototypes
# (duplicates and complements)
# ---------------------------------------------------------------------------


@st.composite
def weight_bits(draw, max_c: int = 24, max_n: int = 150):
    c = draw(st.integers(1, max_c))
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    mode = draw(st.sampled_from(["random", "clustered", "prototypes"]))
    rng = np.random.default_rng(seed)
    if mode == "random":
        return rng.random((c, n)) < draw(st.sampled_from([0.5, 0.1, 0.9]))
    if mode == "clustered":
        bits = np.empty((c, n), dtype=bool)
        bits[0] = rng.random(n) < 0.5
        for i in range(1, c):
            bits[i] = bits[rng.integers(0, i)] ^ (rng.random(n) < 0.05)
        return bits
    protos = rng.random((draw(st.integers(1, 3)), n)) < 0.5
    pick = rng.integers(0, protos.shape[0], c)
    flip = rng.random(c) < 0.5
    return protos[pick] ^ flip[:, None]


# ---------------------------------------------------------------------------
# hamming_matrix
# ---------------------------------------------------------------------------


@SETTINGS
@given(weight_bits(max_c=12, max_n=200))
def test_hamming_matches_naive_loop(bits):
    np.testing.assert_array_equal(hamming_matrix(bits), naive_hamming(bits))


@pytest.mark.parametrize("c,n", [(1, 1), (1, 64), (3, 63), (5, 64), (4, 65), (7, 129), (2, 1000)])
def test_hamming_shapes_and_dtype(c, n):
    rng = np.random.default_rng(c * 1000 + n)
    bits = rng.random((c, n)) < 0.5
    d = hamming_matrix(bits.astype(np.uint8))
    assert d.dtype == np.int64 and d.shape == (c, c)
    np.testing.assert_array_equal(d, naive_hamming(bits))


def test_hamming_chunked_equals_unchunked(monkeypatch):
    rng = np.random.default_rng(7)
    bits = rng.random((37, 300)) < 0.5
    whole = hamming_matrix(bits)
    monkeypatch.setattr(mst, "_CHUNK_BYTES", 1)  # one row per chunk
    np.testing.assert_array_equal(hamming_matrix(bits), whole)
    np.testing.assert_array_equal(whole, naive_hamming(bits))


def test_hamming_extremes():
    n = 130
    bits = np.zeros((3, n), dtype=bool)
    bits[1] = True
    d = hamming_matrix(bits)
    np.testing.assert_array_equal(d, [[0, n, 0], [n, 0, n], [0, n, 0]])


# ---------------------------------------------------------------------------
# Unconstrained: exact minimum weight, small height
# ---------------------------------------------------------------------------


@SETTINGS
@given(weight_bits(), st.booleans())
def test_weight_is_minimum_and_height_beats_plain_prim(bits, negation):
    sched = build_schedule(bits, negation=negation)
    w = effective_weights(bits, negation)
    assert len(sched.roots) == 1
    assert sched.weight == scipy_mst_weight(w)
    assert sched.weight == mst_weight(bits, negation=negation)
    assert sched.height <= plain_prim_height(w)
    check_schedule_consistent(sched, bits)


@pytest.mark.parametrize("c,n", [(64, 576), (96, 333)])
def test_weight_and_height_on_larger_random_layers(c, n):
    rng = np.random.default_rng(c + n)
    bits = rng.random((c, n)) < 0.5
    d = hamming_matrix(bits)
    sched = build_schedule(bits)
    assert sched.weight == scipy_mst_weight(d)
    assert sched.height <= plain_prim_height(d)


def test_tie_breaking_finds_a_shallower_tree_than_plain_prim():
    # A chain 0-1-2-...-7 of distance-1 steps plus a hub 8 at distance 1 from all:
    # plain Prim from 0 walks the chain (height 7+), a shallow MST uses the hub.
    n = 16
    hub = np.zeros(n, dtype=bool)
    rows = []
    for i in range(8):
        r = hub.copy()
        r[i] = True
        rows.append(r)
    rows.append(hub)
    bits = np.array(rows)
    d = hamming_matrix(bits)
    sched = build_schedule(bits)
    assert sched.weight == scipy_mst_weight(d)
    assert sched.height == 1
    assert sched.roots.tolist() == [8]


def test_height_of_a_path_is_halved_by_recentring():
    # Thermometer codes: the only MST is the path 0-1-...-C-1; its centre gives height C//2.
    c, n = 21, 40
    bits = np.arange(n)[None, :] < (2 * np.arange(c))[:, None]
    sched = build_schedule(bits)
    assert sched.weight == 2 * (c - 1)
    assert sched.height == c // 2
    assert sched.roots.tolist() == [c // 2]


def test_identical_channels_make_a_star_of_zero_weight():
    bits = np.tile(np.array([1, 0, 1, 1, 0], dtype=bool), (6, 1))
    sched = build_schedule(bits)
    assert sched.weight == 0 and sched.height == 1 and len(sched.roots) == 1
    assert all(len(p) == 0 for p in sched.positions)
    assert sched.xnors(5) == 5


@pytest.mark.parametrize("n", [1, 7, 64, 100])
def test_complementary_channels_with_and_without_negation(n):
    rng = np.random.default_rng(n)
    row = rng.random(n) < 0.5
    bits = np.array([row, ~row])
    plain = build_schedule(bits)
    assert plain.weight == n and not plain.negate.any()
    neg = build_schedule(bits, negation=True)
    assert neg.weight == 0
    child = int(np.flatnonzero(neg.parent >= 0)[0])
    assert neg.negate[child] and len(neg.positions[child]) == 0
    check_schedule_consistent(neg, bits)


def test_negation_only_where_strictly_shorter():
    # d = N/2 exactly: plain and negated corrections are equally long, keep plain.
    bits = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=bool)
    sched = build_schedule(bits, negation=True)
    assert not sched.negate.any() and sched.weight == 2


@pytest.mark.parametrize("bits", [np.ones((1, 1), bool), np.zeros((1, 1), bool), np.ones((1, 70), bool)])
def test_single_channel(bits):
    sched = build_schedule(bits)
    assert sched.parent.tolist() == [-1] and sched.height == 0 and sched.weight == 0
    assert mst_weight(bits) == 0
    assert build_schedule(bits, max_depth=0).parent.tolist() == [-1]


def test_single_input():
    bits = np.array([[1], [0], [1], [0]], dtype=bool)
    sched = build_schedule(bits)
    assert sched.weight == 1 and sched.height <= 2
    neg = build_schedule(bits, negation=True)
    assert neg.weight == 0


# ---------------------------------------------------------------------------
# max_depth: the virtual-source forest
# ---------------------------------------------------------------------------


@SETTINGS
@given(weight_bits(), st.integers(0, 5), st.booleans())
def test_max_depth_is_respected_and_costs_at_least_the_minimum(bits, depth, negation):
    n = bits.shape[1]
    sched = build_schedule(bits, max_depth=depth, negation=negation)
    assert sched.height <= depth
    check_schedule_consistent(sched, bits)
    w = effective_weights(bits, negation)
    best = scipy_forest_cost(w, n)
    assert best == min_forest_cost(bits, negation=negation)
    assert sched.xnors(n) >= best
    # Never worse than no reuse at all.
    assert sched.xnors(n) <= bits.shape[0] * n
    if depth == 0:
        assert len(sched.roots) == bits.shape[0]


@SETTINGS
@given(weight_bits(), st.booleans())
def test_max_depth_above_the_tree_height_costs_nothing_extra(bits, negation):
    free = build_schedule(bits, negation=negation)
    n = bits.shape[1]
    capped = build_schedule(bits, negation=negation, max_depth=free.height)
    assert capped.height <= free.height
    assert capped.xnors(n) == n + mst_weight(bits, negation=negation)


def test_max_depth_zero_makes_every_channel_a_root():
    rng = np.random.default_rng(3)
    bits = rng.random((9, 20)) < 0.5
    sched = build_schedule(bits, max_depth=0)
    assert sched.roots.tolist() == list(range(9))
    assert sched.xnors(20) == 9 * 20


def test_max_depth_on_a_path_builds_a_shallow_hierarchy():
    # A 64-node path (distance 4 per step): height 1 would need a star, far costlier;
    # the heuristic must stay well below "every channel a root" and within depth.
    c, n = 64, 4 * 64
    bits = np.arange(n)[None, :] < (4 * np.arange(c))[:, None]
    for depth in (1, 2, 3):
        sched = build_schedule(bits, max_depth=depth)
        assert sched.height <= depth
        assert sched.xnors(n) < c * n // 4


def test_extra_weight_of_a_depth_limit_is_reportable():
    rng = np.random.default_rng(11)
    bits = np.empty((40, 200), dtype=bool)
    bits[0] = rng.random(200) < 0.5
    for i in range(1, 40):
        bits[i] = bits[i - 1] ^ (rng.random(200) < 0.03)  # a long chain
    n = bits.shape[1]
    free = build_schedule(bits)
    capped = build_schedule(bits, max_depth=2)
    extra = capped.xnors(n) - (n + mst_weight(bits))
    assert free.height > 2 >= capped.height
    assert extra == schedule_cost(capped, n) - min_forest_cost(bits)
    assert extra > 0


# ---------------------------------------------------------------------------
# edge_cost
# ---------------------------------------------------------------------------


def test_edge_cost_makes_expensive_children_roots():
    # Two tight clusters far apart; corrections cost d**2, a root costs N = 64.
    rng = np.random.default_rng(5)
    n = 64
    a, b = rng.random(n) < 0.5, None
    b = a.copy()
    b[: n // 2] ^= True
    rows = [a ^ (rng.random(n) < 0.02) for _ in range(5)] + [b ^ (rng.random(n) < 0.02) for _ in range(5)]
    bits = np.array(rows)

    def quadratic(d):
        return np.where(d == n, n, d * d)

    sched = build_schedule(bits, edge_cost=quadratic)
    assert len(sched.roots) == 2
    assert {int(r) < 5 for r in sched.roots} == {True, False}
    d = hamming_matrix(bits)
    cost = np.where(d == n, n, d * d)
    assert schedule_cost(sched, n, quadratic) == scipy_forest_cost(cost, n)
    assert schedule_cost(sched, n, quadratic) == min_forest_cost(bits, edge_cost=quadratic)
    # Positions stay the true correction sets.
    check_schedule_consistent(sched, bits)
    # Without edge_cost it is one tree.
    assert len(build_schedule(bits).roots) == 1


@SETTINGS
@given(weight_bits(), st.integers(1, 40), st.booleans(), st.sampled_from([None, 2, 4]))
def test_edge_cost_forest_is_minimum(bits, group, negation, depth):
    n = bits.shape[1]

    def gather_cycles(d):
        return -(-d // group) + 1  # one cycle to fetch the parent's sum

    sched = build_schedule(bits, negation=negation, edge_cost=gather_cycles, max_depth=depth)
    check_schedule_consistent(sched, bits)
    d = naive_hamming(bits) if bits.size <= 4000 else hamming_matrix(bits)
    plain, flipped = gather_cycles(d), gather_cycles(n - d)
    cost = np.minimum(plain, flipped) if negation else plain
    best = scipy_forest_cost(cost, int(gather_cycles(np.array([n]))[0]))
    got = schedule_cost(sched, n, gather_cycles)
    if depth is None:
        assert got == best
    else:
        assert sched.height <= depth and got >= best


# ---------------------------------------------------------------------------
# Determinism and input checks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"negation": True}, {"max_depth": 2}, {"edge_cost": lambda d: d // 3}])
def test_deterministic(kwargs):
    rng = np.random.default_rng(42)
    bits = rng.random((30, 90)) < 0.5
    bits[5] = bits[3]
    bits[7] = ~bits[2]
    a = build_schedule(bits, **kwargs)
    b = build_schedule(bits.astype(np.int8).copy(), **kwargs)
    for field in ("order", "parent", "negate", "level"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert all(np.array_equal(p, q) for p, q in zip(a.positions, b.positions))


@pytest.mark.parametrize(
    "weights,kwargs,match",
    [
        (np.ones(5), {}, "2-D"),
        (np.ones((2, 3, 4)), {}, "2-D"),
        (np.zeros((0, 4)), {}, "at least one"),
        (np.zeros((3, 0)), {}, "at least one"),
        (np.array([[0, 1], [2, 0]]), {}, "not a bit"),
        (np.array([[0, -1]]), {}, "not a bit"),
        (np.array([["a", "b"]]), {}, "not numeric"),
        (np.ones((2, 2)), {"max_depth": -1}, "negative"),
        (np.ones((2, 2)), {"max_depth": 1.5}, "max_depth"),
        (np.ones((2, 2)), {"edge_cost": lambda d: np.zeros(3)}, "shape"),
        (np.ones((2, 2)), {"edge_cost": lambda d: -d - 1}, "negative"),
        (np.ones((2, 2)), {"edge_cost": lambda d: d / 3}, "non-integer"),
    ],
)
def test_bad_input_raises_user_error(weights, kwargs, match):
    with pytest.raises(UserError, match=match):
        build_schedule(weights, **kwargs)


def test_hamming_rejects_bad_input():
    with pytest.raises(UserError, match="2-D"):
        hamming_matrix(np.ones(3))
    with pytest.raises(UserError, match="not a bit"):
        hamming_matrix(np.array([[0.5, 1.0]]))


@pytest.mark.slow
def test_benchmark_size_is_fast_and_minimal():
    import time

    rng = np.random.default_rng(0)
    bits = rng.random((512, 4608)) < 0.5
    start = time.perf_counter()
    sched = build_schedule(bits)
    elapsed = time.perf_counter() - start
    assert sched.weight == scipy_mst_weight(hamming_matrix(bits))
    assert elapsed < 2.0, f"build_schedule took {elapsed:.2f} s for 512 x 4608"


def test_edge_cost_ties_prefer_fewer_positions():
    # A path of distance-3 steps: with a gather unit of 64 positions per cycle every
    # edge costs one cycle, so every spanning tree is cost-optimal; the scheduler
    # must still pick the one storing the fewest positions, the plain MST.
    c, n = 40, 3 * 40
    bits = np.arange(n)[None, :] < (3 * np.arange(c))[:, None]

    def one_fetch(d):
        return -(-d // 64)

    sched = build_schedule(bits, edge_cost=one_fetch)
    assert len(sched.roots) == 1
    assert schedule_cost(sched, n, one_fetch) == min_forest_cost(bits, edge_cost=one_fetch)
    assert sched.weight == mst_weight(bits) == 3 * (c - 1)
    capped = build_schedule(bits, edge_cost=one_fetch, max_depth=1)
    # Depth 1 is free in cycles here (a star costs one cycle per child too).
    assert capped.height <= 1
    assert schedule_cost(capped, n, one_fetch) == min_forest_cost(bits, edge_cost=one_fetch)


def test_edge_cost_too_large_is_a_user_error():
    bits = np.eye(4, dtype=bool)
    with pytest.raises(UserError, match="too large"):
        build_schedule(bits, edge_cost=lambda d: d + (1 << 60))
    with pytest.raises(UserError, match="too large"):
        min_forest_cost(bits, edge_cost=lambda d: d + (1 << 60))
