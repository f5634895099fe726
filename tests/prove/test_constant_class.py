"""A constant ``out_class``: the argmax is decided when the scores are constant.

A hidden channel whose threshold lies outside its sum's range is a constant bit
(here h = 1 for every input); the scores after it are constants, every compare
of the argmax is decided, and ``out_class`` evaluates to a constant (issue 18's
width-1 corners: a 1-input, 1-channel, 2-class network found it). The constant
is proven when it is the lowest-index argmax for every input, and not otherwise.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.ir import BinaryDense, InputQuantizer, Network, Threshold
from mstbnn.prove.compare import DIFFERS, NOT_PROVEN, PROVEN
from mstbnn.prove.evaluate import Evaluator, run_deep
from mstbnn.prove.linear import Lin, Space
from mstbnn.prove.netlist import Netlist
from tests.prove.helpers import build, prove


def _net(score_rows, threshold=-5):
    """1 threshold input -> 1 hidden channel (y in {-1, 1}; h = [y >= threshold]) -> scores of ``score_rows``."""
    return schedule_network(Network(layers=[
        InputQuantizer(shape=(1,), mode="threshold", thresholds=np.array([1]), bits=1),
        BinaryDense(weights=np.array([[1]], dtype=bool)),
        Threshold(threshold=np.array([threshold]), direction=np.array([1])),
        BinaryDense(weights=np.asarray(score_rows, dtype=bool)),
    ]))


def _set_class_port(data, value: str):
    next(iter(data["modules"].values()))["ports"]["out_class"]["bits"] = [value]
    return data


@pytest.mark.parametrize("rows", [[[1], [1]], [[1], [0]]], ids=["tie", "class-0-wins"])
@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "baseline"])
def test_constant_scores_decide_the_argmax_and_the_class_is_proven(tmp_path, reuse, rows):
    net = _net(rows)
    data, desc = build(net, tmp_path, reuse=reuse)
    # the corner is really there: h = 1, the scores are constants, out_class evaluates to the constant 0
    ev = Evaluator(Netlist(copy.deepcopy(data)), Space(), {"out_ready": 1, "rst": 0})
    cls = run_deep(lambda: ev.port("out_class"))
    assert isinstance(cls, Lin) and cls.is_const and cls.const == 0
    report = prove(data, net, desc)
    assert report["verdict"] == PROVEN, report["message"]


@pytest.mark.parametrize("rows, says", [
    ([[1], [1]], "out_class is the constant 1, but class 0's score is not below it"),   # a tie goes to class 0
    ([[1], [0]], "out_class is the constant 1, but class 0's score is not below it"),   # s0 = 1 > s1 = -1
])
def test_constant_class_that_is_not_the_argmax_differs(tmp_path, rows, says):
    net = _net(rows)
    data, desc = build(net, tmp_path)
    report = prove(_set_class_port(copy.deepcopy(data), "1"), net, desc)
    assert report["verdict"] == DIFFERS and says in report["message"], report["message"]


def test_constant_class_where_the_scores_vary_is_not_proven(tmp_path):
    net = _net([[1], [0]], threshold=1)  # h = x: s0 = 2x - 1, s1 = -s0, either class wins on some input
    data, desc = build(net, tmp_path)
    assert prove(data, net, desc)["verdict"] == PROVEN
    report = prove(_set_class_port(copy.deepcopy(data), "0"), net, desc)
    assert report["verdict"] == NOT_PROVEN, report["message"]
    assert "out_class is the constant 0, but class 1's score is not shown to be at most it" in report["message"]
