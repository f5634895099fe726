"""Width-1 corners (issue 18): tiny scheduled networks, each built to hit one or more corners.

``CORNERS[name]`` lists what a network covers; ``corner_network(name)`` builds it.
Every network has two classes (a 1-bit ``out_class``) and reaches both classes
on some input, except ``int1`` (where the two scores are always equal, so the
class is always 0: the lowest-index tie).

==================  ==========================================================
corner              network
==================  ==========================================================
2 classes           all (a 1-bit ``out_class``; cocotb hands back a ``Logic``)
1-input layer       ``one`` (1 feature, threshold input: a 1-bit ``in_data``),
                    ``int1``, ``conv1x1`` (1 input channel, 1 pixel)
1-channel layer     ``one`` (1 hidden channel), ``conv1x1`` (1 conv channel)
1-step folded walk  ``one``, ``conv1x1`` (fan-in 1, one channel: W = 1, issue 16)
1-bit score width   ``int1``, unrolled engine (y = -x in {-1, 0}); the folded
                    engine's scores are 2 bits (its range is symmetric)
int input, 1 bit    ``int1`` (unsigned, 0..1), ``forest`` (signed, -1..0)
score layer on the  ``int1`` (no hidden layer: quantiser and scores in one
input               stage)
d = 0 child         ``int1`` (equal rows: a child with no corrections)
all-roots forest    ``forest`` score layer (complementary rows, max depth 1:
                    reuse engine without a gather unit)
single chain        ``forest`` hidden layer (levels 0-1-2-3, one negated edge)
conv 1x1            ``conv1x1``: 1x1 kernel, 1 channel in and out, 1x1 output
==================  ==========================================================
"""

from __future__ import annotations

import numpy as np

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.ir import BinaryConv2d, BinaryDense, InputQuantizer, Network, Threshold
from mstbnn.compiler.schedule import Schedule

CORNERS = {
    "one": "1 input feature (1-bit in_data), 1 hidden channel, 2 classes; folded W = 1",
    "int1": "1-bit unsigned int input straight into the score layer; 1-bit scores (unrolled); tied classes",
    "forest": "1-bit signed int input (-1..0); hidden layer a single chain with a negated edge; all-roots score layer",
    "conv1x1": "1x1 one-bit input, 1x1 conv with 1 channel (1x1 output), 2 classes",
}

ENGINES = [("unrolled", False), ("unrolled", True), ("folded", False), ("folded", True)]
ENGINE_IDS = ["unrolled-reuse", "unrolled-baseline", "folded-reuse", "folded-baseline"]


def _threshold(t, direction):
    return Threshold(threshold=np.asarray(t, dtype=np.int64), direction=np.asarray(direction, dtype=np.int64))


def _bits(rows):
    return np.asarray(rows, dtype=bool)


def all_inputs(net: Network) -> np.ndarray:
    """Every raw input of a corner network (each has at most 4 one-bit inputs): the exhaustive test set."""
    lo, hi = net.input.value_range
    shape = tuple(net.input.shape)
    n = int(np.prod(shape))
    grid = np.stack(np.meshgrid(*[np.arange(lo, hi + 1)] * n, indexing="ij"), -1).reshape(-1, n)
    return grid.reshape(-1, *shape).astype(np.int64)


def corner_network(name: str) -> Network:
    if name == "one":
        # x >= 1 (the one bit); h = [y >= 1] = x; scores +-(2h - 1): class 0 when x = 1, else 1
        net = Network(layers=[
            InputQuantizer(shape=(1,), mode="threshold", thresholds=np.array([1]), bits=1),
            BinaryDense(weights=_bits([[1]])), _threshold([1], [1]),
            BinaryDense(weights=_bits([[1], [0]])),
        ])
        return schedule_network(net)
    if name == "int1":
        return schedule_network(Network(layers=[
            InputQuantizer(shape=(1,), mode="int", bits=1, signed=False),
            BinaryDense(weights=_bits([[0], [0]])),
        ]))
    if name == "forest":
        chain = _bits([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 0]])
        net = schedule_network(Network(layers=[
            InputQuantizer(shape=(4,), mode="int", bits=1, signed=True),
            BinaryDense(weights=chain), _threshold([-1, 0, 0, 1], [1, -1, 1, 1]),
            BinaryDense(weights=_bits([[0, 0, 1, 1], [1, 1, 0, 0]])),
        ]), max_depth=1)
        # the compiler re-roots a path at its centre; a single chain (root at one end) is a valid schedule too
        net.layers[1].schedule = Schedule.from_parents(chain, [-1, 0, 1, 2], [False, False, True, False])
        return net
    if name == "conv1x1":
        net = Network(layers=[
            InputQuantizer(shape=(1, 1, 1), mode="threshold", thresholds=np.array([[[1]]]), bits=1),
            BinaryConv2d(weights=np.ones((1, 1, 1, 1), dtype=bool)), _threshold([1], [1]),
            BinaryDense(weights=_bits([[1], [0]])),
        ])
        return schedule_network(net)
    raise KeyError(name)
