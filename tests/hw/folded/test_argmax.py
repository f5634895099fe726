"""Sequential argmax: lowest index on ties, every output exactly once, C + 1 cycles per image."""

import numpy as np
import pytest

from mstbnn.hw.folded.argmax import SequentialArgmax
from mstbnn.hw.folded.plan import SequentialArgmaxPlan
from tests.hw.streams import pack, run_stream, unpack


@pytest.mark.parametrize("classes,width", [(1, 4), (2, 3), (5, 6), (10, 9)])
def test_argmax_against_numpy(classes, width):
    rng = np.random.default_rng(classes)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    scores = rng.integers(lo, hi + 1, size=(30, classes))
    scores[0] = hi  # every class tied at the top
    scores[1] = lo
    scores[2, -1] = hi  # the maximum on the last class
    beats = [pack(row, width) for row in scores]
    want_cls = np.argmax(scores, axis=1).tolist()  # first maximum: the lowest index
    for stall in (0.5, 1.0):
        dut = SequentialArgmax(SequentialArgmaxPlan(classes, width))
        outs, ins, out_cycles = run_stream(dut, beats, len(beats), in_prob=stall, out_prob=stall, seed=classes,
                                           out_ports=("o.payload.index", "o.payload.scores"))
        assert [o[0] for o in outs] == want_cls
        assert [unpack(o[1], classes, width) for o in outs] == scores.tolist()
        if stall == 1.0:
            assert {o - i for i, o in zip(ins, out_cycles)} == {classes + 1}
            assert {b - a for a, b in zip(out_cycles, out_cycles[1:])} == {classes + 1}
