"""`--cost luts`: trees that minimise the LUT model are never dearer than XNOR trees under it, and stay exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mstbnn.compiler.compile import build_layer_schedule, schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.lutcost import bit_width, lut_edge_cost, popcount_tree_features
from mstbnn.compiler.mst import build_schedule, min_forest_cost, schedule_cost
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs, similar_weights
from mstbnn.errors import UserError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layers(draw):
    c = draw(st.integers(2, 14))
    n = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        bits = similar_weights(rng, c, n, flip=draw(st.sampled_from([0.05, 0.2])))
    else:
        bits = rng.integers(0, 2, size=(c, n)).astype(bool)
    return bits.astype(bool)


@SETTINGS
@given(bits=layers(), depth=st.sampled_from([None, 1, 2, 3]), negation=st.booleans())
def test_lut_tree_never_dearer_than_xnor_tree_under_the_lut_model(bits, depth, negation):
    n = bits.shape[1]
    model = lut_edge_cost(n)
    lut = build_layer_schedule(bits, max_depth=depth, negation=negation, cost="luts")
    xnor = build_layer_schedule(bits, max_depth=depth, negation=negation, cost="xnor")
    assert lut.height <= (depth if depth is not None else lut.height)
    assert schedule_cost(lut, n, model) <= schedule_cost(xnor, n, model)
    if depth is None:  # uncapped, the builder is exact: the cheapest forest of all
        assert schedule_cost(lut, n, model) == min_forest_cost(bits, negation=negation, edge_cost=model)


def test_lut_tree_is_strictly_cheaper_where_a_long_edge_costs_more_than_a_root():
    n = 32
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, size=(4, n)).astype(bool)
    w[1] = w[0]
    w[1, 1:] = ~w[0, 1:]  # d(0, 1) = N - 1
    w[2] = w[0] ^ (np.arange(n) < 2)  # d(0, 2) = 2
    w[3] = w[1] ^ (np.arange(n) < 2)  # d(1, 3) = 2
    model = lut_edge_cost(n)
    xnor = build_layer_schedule(w, cost="xnor")
    lut = build_layer_schedule(w, cost="luts")
    assert len(xnor.roots) == 1 and len(lut.roots) == 2
    assert schedule_cost(lut, n, model) < schedule_cost(xnor, n, model)
    assert lut.xnors(n) > xnor.xnors(n)  # the price: more XNORs, fewer LUTs


def test_lut_edge_cost_by_hand():
    # 5-term tree (2 adder levels per stage): level 1 adds 2 pairs of 1-bit terms into 2-bit sums
    # (combinational), level 2 one pair into 3 bits (registered, < 4 bits: small), level 3 adds the
    # odd term: 3 bits (registered, last level).
    assert popcount_tree_features(5) == {"reg_add_bits": 0, "small_add_bits": 6, "comb_add_bits": 4,
                                         "inline_add_bits": 0, "delta_bits": 0, "cmp_bits": 0, "misc_add_bits": 0}
    cost = lut_edge_cost(5)
    # ECP5: 0.293 LUT/small bit, 1.481 LUT + 0.005 carry / comb bit, delta adder of width(0..5) + 1 = 4 bits at
    # 0.543 LUT + 0.563 carry; LUT4-eq = round(luts) + 2 round(carry), x 10, + 1.
    small, comb = 6 * 0.293, 4 * 1.481
    root = round(small + comb) + 2 * round(4 * 0.005)
    assert cost(np.array([5]))[0] == 10 * root + 1
    d1 = round(4 * 0.543) + 2 * round(4 * 0.563)  # a 1-term correction: no tree, only the delta adder
    assert cost(np.array([0, 1]))[1] == 10 * d1 + 1
    assert bit_width(0, 5) == 3 and bit_width(-4, 3) == 3 and bit_width(-5, 3) == 4


@pytest.mark.parametrize("make", [
    lambda rng: random_dense_network(rng, features=24, hidden=(20, 16), classes=5),
    lambda rng: random_dense_network(rng, features=12, hidden=(18,), classes=3, input_mode="int", bits=4, signed=True),
    lambda rng: random_conv_network(rng),
])
@pytest.mark.parametrize("depth", [None, 2])
def test_reuse_equals_direct_bit_for_bit_with_lut_trees(make, depth):
    rng = np.random.default_rng(3)
    net = make(rng)
    lut = schedule_network(net, max_depth=depth, cost="luts")
    assert lut.meta["schedule"]["cost"] == "luts"
    x = random_inputs(net, rng, 48)
    direct, reuse = run(lut, x, "direct"), run(lut, x, "reuse")
    for a, b in zip(direct.layers, reuse.layers):
        for field in ("sums", "bits"):
            va, vb = getattr(a, field), getattr(b, field)
            assert (va is None) == (vb is None)
            if va is not None:
                assert np.array_equal(va, vb)
    assert np.array_equal(direct.scores, reuse.scores) and np.array_equal(direct.classes, reuse.classes)
    # and the trees are the LUT-model trees
    for (i, a), (_, b) in zip(lut.binary_layers(), schedule_network(net, max_depth=depth).binary_layers()):
        n = a.fan_in
        from mstbnn.compiler.compile import layer_leaf

        model = lut_edge_cost(n, leaf=layer_leaf(net, i))
        assert schedule_cost(a.schedule, n, model) <= schedule_cost(b.schedule, n, model)


def test_unknown_cost_is_a_user_error():
    net = random_dense_network(np.random.default_rng(0))
    with pytest.raises(UserError, match="--cost: unknown tree cost 'area'"):
        schedule_network(net, cost="area")


def test_train_and_compile_with_lut_cost(tmp_path, capsys):
    """`mstbnn train --cost luts` trains against LUT trees; `compile` then builds them by default."""
    from mstbnn.cli import main
    from mstbnn.compiler import io
    from mstbnn.nn.export import load_checkpoint

    pt = tmp_path / "m.pt"
    assert main(["train", "--hidden", "12", "--epochs", "1", "--mst-warmup", "0", "--mst-ramp", "0",
                 "--mst-lambda", "2", "--cost", "luts", "--max-depth", "3", "--quiet", "-o", str(pt)]) == 0
    trained = load_checkpoint(pt)
    assert trained.meta["train"]["cost"] == "luts"
    assert main(["compile", str(pt), "-o", str(tmp_path / "a")]) == 0
    assert main(["compile", str(pt), "-o", str(tmp_path / "b"), "--cost", "xnor"]) == 0
    a, b = io.load(tmp_path / "a"), io.load(tmp_path / "b")
    assert a.meta["schedule"]["cost"] == "luts" and "cost" not in b.meta["schedule"]
    for (i, la), (_, lb) in zip(a.binary_layers(), b.binary_layers()):
        w = la.weight_matrix.astype(bool)
        assert la.schedule.parent.tolist() == build_layer_schedule(w, max_depth=3, cost="luts").parent.tolist()
        assert lb.schedule.parent.tolist() == build_schedule(w, max_depth=3).parent.tolist()
    capsys.readouterr()
    # argparse's choices, like every other enumerated flag: one `mstbnn: error:` line, exit 2
    assert main(["compile", str(pt), "-o", str(tmp_path / "c"), "--cost", "area"]) == 2
    assert not (tmp_path / "c").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mstbnn: error:") and "--cost: invalid choice: 'area'" in err[0]
