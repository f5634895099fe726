"""Structural validation: each malformed network gets one line naming layer and field."""

import numpy as np
import pytest

from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, MaxPool, Network, Threshold
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.validate import validate
from mstbnn.errors import UserError


def inp(shape=(4,), mode="threshold"):
    t = np.zeros(shape, dtype=np.int64) if mode == "threshold" else None
    return InputQuantizer(shape=shape, mode=mode, thresholds=t, bits=4)


def dense(c, n):
    return BinaryDense(weights=np.ones((c, n), dtype=bool))


def thr(c):
    return Threshold(threshold=np.zeros(c, dtype=np.int64), direction=np.ones(c, dtype=np.int64))


def conv(c_out, c_in, k=3, stride=1, padding=1):
    return BinaryConv2d(weights=np.ones((c_out, c_in, k, k), dtype=bool), stride=stride, padding=padding)


@pytest.mark.parametrize(
    "layers, message",
    [
        ([], "network has no layers"),
        ([dense(2, 4)], "layer 0 \\(dense\\): the input quantiser must be the first layer"),
        ([inp()], "no binary layer"),
        ([inp(), dense(3, 4), thr(3)], "layer 2 \\(threshold\\): the network must end with the binary layer"),
        ([inp(), dense(3, 4), dense(2, 3)], "layer 2 \\(dense\\): follows a binary layer directly"),
        ([inp(), dense(3, 5)], "layer 1 \\(dense\\): weights have fan-in 5, but the incoming activation has 4"),
        ([inp(), thr(4), dense(2, 4)], "layer 1 \\(threshold\\): a threshold must directly follow a binary layer"),
        ([inp(), dense(3, 4), thr(2), dense(2, 3)], "layer 2 \\(threshold\\): threshold has shape \\(2,\\)"),
        ([inp(), conv(2, 1), thr(2), dense(2, 2)], "layer 1 \\(conv2d\\): conv2d needs a \\(C, H, W\\) input"),
        ([inp((1, 4, 4)), conv(2, 3), thr(2), dense(2, 32)], "layer 1 \\(conv2d\\): weights expect 3 input channels"),
        ([inp((1, 2, 2)), conv(2, 1, k=5, padding=0), thr(2), dense(2, 2)], "layer 1 \\(conv2d\\): kernel 5 does not fit"),
        ([inp((1, 4, 4)), conv(2, 1, stride=0), thr(2), dense(2, 32)], "layer 1 \\(conv2d\\): stride must be an integer >= 1"),
        ([inp((1, 4, 4)), conv(2, 1), MaxPool(), dense(2, 8)], "layer 2 \\(maxpool\\): max-pool needs a \\(C, H, W\\) bit activation"),
        ([inp((1, 4, 4), "int"), MaxPool(), conv(2, 1), thr(2), dense(2, 8)], "layer 1 \\(maxpool\\): an 'int' input must feed a binary layer"),
        ([InputQuantizer(shape=(4,), mode="float"), dense(2, 4)], "layer 0 \\(input\\): mode must be"),
        ([InputQuantizer(shape=(4,), mode="threshold"), dense(2, 4)], "layer 0 \\(input\\): thresholds must be an integer array"),
        ([InputQuantizer(shape=(4, 4), mode="int"), dense(2, 16)], "layer 0 \\(input\\): shape must be"),
    ],
)
def test_malformed_networks(layers, message):
    with pytest.raises(UserError, match=message) as info:
        validate(Network(layers=layers))
    assert "\n" not in str(info.value)


def test_non_binary_weights():
    bad = BinaryDense(weights=np.array([[0, 1, 2, 1]]))
    with pytest.raises(UserError, match="layer 1 \\(dense\\): weights is not binary \\(found values \\[2\\]\\)"):
        validate(Network([inp(), bad]))


def test_schedule_with_cycle_is_rejected():
    w = np.eye(3, 4, dtype=bool)
    good = Schedule.from_parents(w, np.array([-1, 0, 1]))
    bad = Schedule(order=good.order, parent=np.array([2, 0, 1]), negate=good.negate, level=good.level, positions=good.positions)
    layer = BinaryDense(weights=w, schedule=bad)
    with pytest.raises(UserError, match="layer 1 \\(dense\\): schedule.parent: parent array contains a cycle"):
        validate(Network([inp(), layer]))


def test_schedule_with_wrong_positions_is_rejected():
    w = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    good = Schedule.from_parents(w, np.array([-1, 0]))
    wrong = Schedule(order=good.order, parent=good.parent, negate=good.negate, level=good.level,
                     positions=(good.positions[0], np.array([2])))
    with pytest.raises(UserError, match="schedule.positions\\[1\\] is not the correction set"):
        validate(Network([inp(), BinaryDense(weights=w, schedule=wrong)]))


def test_valid_conv_network_passes():
    net = Network([inp((1, 6, 6)), conv(3, 1), thr(3), MaxPool(), conv(2, 3, stride=2), thr(2), dense(2, 2 * 2 * 2)])
    assert validate(net) is net
    assert net.shapes()[-2] == (2, 2, 2)
