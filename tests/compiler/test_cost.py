"""Cost model: XNOR counts, heights and storage bits, computed by hand."""

import numpy as np

from mstbnn.compiler.cost import format_table, layer_costs, network_cost, storage_bits
from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, Network, Threshold
from mstbnn.compiler.schedule import Schedule


def test_dense_chain_counts_by_hand():
    # 4 channels over N = 10: 0 is the root, 1 differs from 0 in 2 bits, 2 from 1 in 3, 3 is a second root.
    w = np.zeros((4, 10), dtype=bool)
    w[1, [0, 1]] = True
    w[2, [0, 1, 2, 3, 4]] = True
    w[3] = True
    sched = Schedule.from_parents(w, np.array([-1, 0, 1, -1]))
    assert sched.weight == 5 and sched.height == 2 and list(sched.roots) == [0, 3]
    assert list(sched.order) == [0, 3, 1, 2]
    net = Network([InputQuantizer(shape=(10,), mode="int", bits=4), BinaryDense(weights=w, schedule=sched)])
    (cost,) = layer_costs(net)
    assert cost.xnor_plain == 40
    assert cost.xnor_reuse == 2 * 10 + 5
    assert cost.ratio == 40 / 25
    # 4 flag bits + 2 roots * 10 + 2 children * (parent id 2 bits + length 4 bits)
    # + 5 positions * (4 index bits + the child's weight bit)
    assert storage_bits(sched, 10) == 4 + 20 + 2 * 6 + 5 * 5
    assert cost.storage_reuse_bits == 61 and cost.storage_plain_bits == 40


def test_negation_edge_costs_the_complement_and_a_flag_bit():
    w = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0]], dtype=bool)  # d = 5, N - d = 1
    sched = Schedule.from_parents(w, np.array([-1, 0]), np.array([False, True]))
    assert list(sched.positions[1]) == [5]
    assert sched.xnors(6) == 6 + 1
    assert storage_bits(sched, 6) == 2 + 6 + (1 + 3 + 1) + 1 * (3 + 1)


def test_conv_totals_scale_with_output_pixels():
    w = np.zeros((2, 1, 3, 3), dtype=bool)
    w[1, 0, 0, 0] = True
    sched = Schedule.from_parents(w.reshape(2, -1), np.array([-1, 0]))
    net = Network(
        [
            InputQuantizer(shape=(1, 5, 5), mode="int", bits=4),
            BinaryConv2d(weights=w, stride=2, padding=1, schedule=sched),
            Threshold(threshold=np.zeros(2, dtype=np.int64), direction=np.ones(2, dtype=np.int64)),
            BinaryDense(weights=np.ones((3, 18), dtype=bool)),
        ]
    )
    total = network_cost(net)
    assert [c["evaluations"] for c in total["layers"]] == [9, 1]
    assert total["xnor_plain"] == 9 * 18 + 54
    assert total["xnor_reuse"] == 9 * (9 + 1) + 54  # the final layer has no schedule: plain
    assert "| total |" in format_table(net)
