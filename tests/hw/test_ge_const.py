"""The input quantiser's constant compare as plain logic: equal to >= for every input and threshold."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from mstbnn.hw.layers import ge_const


@pytest.mark.parametrize("signed", [False, True])
def test_ge_const_equals_the_comparison_for_every_value_and_threshold(signed):
    w = 4
    lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
    thresholds = list(range(lo - 2, hi + 3))  # includes always-true and always-false thresholds
    x = Signal(w)
    outs = [Signal(name=f"ge{k}") for k in range(len(thresholds))]
    m = Module()
    m.d.comb += [o.eq(ge_const(x, t, signed)) for o, t in zip(outs, thresholds)]
    sim = Simulator(m)
    seen = []

    async def bench(ctx):
        for raw in range(1 << w):
            ctx.set(x, raw)
            value = raw - (1 << w) if signed and raw >> (w - 1) else raw
            for o, t in zip(outs, thresholds):
                seen.append((value, t, ctx.get(o), int(value >= t)))

    sim.add_testbench(bench)
    sim.run()
    wrong = [(v, t, got) for v, t, got, want in seen if got != want]
    assert not wrong
    assert len(seen) == (1 << w) * len(thresholds)
