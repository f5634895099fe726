"""Each component against a deliberately naive model, in the Amaranth simulator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from mstbnn.compiler.execute import im2col
from mstbnn.compiler.schedule import Schedule
from mstbnn.hw.components import (
    Collector,
    DeltaThreshold,
    DeltaUpdate,
    OrPool,
    ThresholdUnit,
    WindowGenerator,
)
from mstbnn.hw.layers import ArgmaxStage, BinaryStage
from mstbnn.hw.stage_plan import ArgmaxStagePlan, BinaryStagePlan, DeltaParams, FusedLeaf, tree_latency
from tests.hw.streams import pack, run_stream, unpack


def _comb(dut, bench):
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def _int_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


# --------------------------------------------------------------------------- popcount tree


def _naive_popcount(x, w, binary):
    if binary:
        return int(np.sum(x == w))  # XNOR then count
    return int(np.sum(np.where(w, x, -x)))


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("kind", ["binary", "u3", "s4"])
def test_popcount_tree_matches_naive_model_through_pipeline(n, r, kind):
    """One channel, one root: the stage's XNOR-popcount tree against the naive sum, under stalls."""
    rng = np.random.default_rng(n * 31 + r)
    w = rng.integers(0, 2, n).astype(bool)
    binary = kind == "binary"
    bits = 1 if binary else int(kind[1])
    signed = kind.startswith("s")
    lo, hi = (0, 1) if binary else _int_range(bits, signed)
    plan = BinaryStagePlan(w[None, :], Schedule.plain(1), front={"kind": "vector"}, binary=binary, elem_bits=bits,
                           elem_signed=signed, adder_levels_per_stage=r)
    assert plan.root_stage == tree_latency(n, r) and plan.depth == tree_latency(n, r) + 1
    xs = [rng.integers(lo, hi + 1, n) for _ in range(24)]
    # Worst cases: every input agreeing with its weight, every input disagreeing.
    if binary:
        xs += [w.astype(int), (~w).astype(int)]
    else:
        xs += [np.where(w, hi, lo), np.where(w, lo, hi)]
    out, _, _ = run_stream(BinaryStage(plan), [pack(x, bits) for x in xs], len(xs), in_prob=0.7, out_prob=0.6, seed=n)
    got = [unpack(o[0], 1, plan.score_width, signed=True)[0] for o in out]
    scale, bias = (2, -n) if binary else (1, 0)  # the score layer's output is y = 2p - N for bits
    assert got == [scale * _naive_popcount(x, w, binary) + bias for x in xs]
    exact = sorted(scale * _naive_popcount(x, w, binary) + bias for x in xs[-2:])
    assert tuple(exact) == plan.y_range[0]  # the range is exact: both ends reached


# --------------------------------------------------------------------------- DeltaUpdate


@pytest.mark.parametrize("n", [4, 7, 9])
@pytest.mark.parametrize("negate", [False, True])
def test_delta_update_equals_childs_own_popcount(n, negate):
    """p_parent and the correction q rebuild exactly popcount(XNOR(x, w_child)), for every x."""
    rng = np.random.default_rng(n + 10 * negate)
    for trial in range(3):
        wp = rng.integers(0, 2, n).astype(bool)
        wc = rng.integers(0, 2, n).astype(bool)
        if trial == 0:  # extreme: child = parent, or child = -parent on a negation edge
            wc = ~wp if negate else wp.copy()
        pos = np.flatnonzero(wc == wp) if negate else np.flatnonzero(wc != wp)
        dut = DeltaUpdate(DeltaParams.binary(n, len(pos), negate))

        async def bench(ctx):
            for bits in itertools.product([0, 1], repeat=n):
                x = np.array(bits, dtype=bool)
                p = int(np.sum(x == wp))
                q = int(np.sum(x[pos] == wc[pos]))
                ctx.set(dut.parent, p)
                ctx.set(dut.corr, q)
                assert ctx.get(dut.out) == int(np.sum(x == wc))

        _comb(dut, bench)


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("bits,signed", [(3, False), (3, True)])
def test_integer_delta_update_equals_childs_own_sum(negate, bits, signed):
    rng = np.random.default_rng(bits + negate)
    n = 6
    lo, hi = _int_range(bits, signed)
    wp = rng.integers(0, 2, n).astype(bool)
    wc = rng.integers(0, 2, n).astype(bool)
    pos = np.flatnonzero(wc == wp) if negate else np.flatnonzero(wc != wp)

    def rng_of(w, positions):
        w = w[positions]
        return int(np.where(w, lo, -hi).sum()), int(np.where(w, hi, -lo).sum())

    dut = DeltaUpdate(DeltaParams.integer(rng_of(wp, np.arange(n)), rng_of(wc, pos), rng_of(wc, np.arange(n)), negate))
    xs = [rng.integers(lo, hi + 1, n) for _ in range(300)] + [np.where(wc, hi, lo), np.where(wc, lo, hi)]

    async def bench(ctx):
        for x in xs:
            ctx.set(dut.parent, _naive_popcount(x, wp, False))
            ctx.set(dut.corr, _naive_popcount(x[pos], wc[pos], False))
            assert ctx.get(dut.out) == _naive_popcount(x, wc, False)

    _comb(dut, bench)


# --------------------------------------------------------------------------- ThresholdUnit


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("scale,bias,vrange", [(2, -9, (0, 9)), (1, 0, (-7, 12))])
def test_threshold_unit_compares_in_the_y_domain(direction, scale, bias, vrange):
    lo, hi = vrange
    ylo, yhi = scale * lo + bias, scale * hi + bias
    for t in range(ylo - 3, yhi + 4):
        dut = ThresholdUnit(vrange, t, direction, scale=scale, bias=bias)

        async def bench(ctx):
            for v in range(lo, hi + 1):
                y = scale * v + bias
                ctx.set(dut.value, v)
                assert ctx.get(dut.bit) == int(y >= t if direction > 0 else y <= t)

        _comb(dut, bench)


# --------------------------------------------------------------------------- stream fronts


def _image_beats(img, bits):
    c, h, w = img.shape
    return [pack(img[:, r, col], bits) for r in range(h) for col in range(w)]


@pytest.mark.parametrize("c,h,w,k,s,p,bits", [(1, 5, 5, 3, 1, 1, 1), (2, 6, 5, 3, 2, 1, 1), (2, 4, 4, 2, 2, 0, 3), (1, 3, 4, 3, 1, 2, 2)])
def test_window_generator_matches_im2col_under_stalls(c, h, w, k, s, p, bits):
    rng = np.random.default_rng(h * w + k)
    imgs = rng.integers(0, 1 << bits, size=(3, c, h, w))
    dut = WindowGenerator(c, h, w, k, s, p, elem_bits=bits)

    class Wrap:
        pass

    # Drive the generator as a stream: en = out_ready (a one-register stage).
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Stage(wiring.Component):
        def __init__(self):
            super().__init__({"in_valid": In(1), "in_ready": Out(1), "in_data": In(c * bits), "out_valid": Out(1),
                              "out_ready": In(1), "out_data": Out(k * k * c * bits)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.wg = dut
            en = Signal()
            m.d.comb += [en.eq(~self.out_valid | self.out_ready), dut.en.eq(en), dut.in_valid.eq(self.in_valid),
                         dut.in_data.eq(self.in_data), self.in_ready.eq(dut.in_ready),
                         self.out_valid.eq(dut.window_valid), self.out_data.eq(dut.window)]
            return m

    beats = [b for img in imgs for b in _image_beats(img, bits)]
    oh, ow = dut.out_height, dut.out_width
    out, _, _ = run_stream(Stage(), beats, 3 * oh * ow, in_prob=0.7, out_prob=0.5, seed=k)
    want = im2col(imgs, k, s, p, 0).reshape(-1, c * k * k)
    got = np.array([unpack(o[0], c * k * k, bits, signed=False) for o in out])
    np.testing.assert_array_equal(got, want)


def test_collector_flattens_channel_major_under_stalls():
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    c, h, w = 3, 2, 3
    dut = Collector(c, h, w)

    class Stage(wiring.Component):
        def __init__(self):
            super().__init__({"in_valid": In(1), "in_ready": Out(1), "in_data": In(c), "out_valid": Out(1),
                              "out_ready": In(1), "out_data": Out(c * h * w)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.col = dut
            en = Signal()
            m.d.comb += [en.eq(~self.out_valid | self.out_ready), dut.en.eq(en), dut.in_valid.eq(self.in_valid),
                         dut.in_data.eq(self.in_data), self.in_ready.eq(dut.in_ready),
                         self.out_valid.eq(dut.out_valid), self.out_data.eq(dut.out)]
            return m

    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 2, size=(4, c, h, w))
    beats = [b for img in imgs for b in _image_beats(img, 1)]
    out, _, _ = run_stream(Stage(), beats, 4, in_prob=0.6, out_prob=0.4, seed=2)
    got = np.array([unpack(o[0], c * h * w, 1, signed=False) for o in out])
    np.testing.assert_array_equal(got, imgs.reshape(4, -1))


# --------------------------------------------------------------------------- OrPool, ArgmaxStage


def test_or_pool_is_any_over_each_channel_window():
    c, k = 3, 2
    dut = OrPool(c, k)

    async def bench(ctx):
        for word in range(1 << (c * k * k)):
            ctx.set(dut.window, word)
            bits = [(word >> i) & 1 for i in range(c * k * k)]
            want = [int(any(bits[ch * k * k : (ch + 1) * k * k])) for ch in range(c)]
            assert ctx.get(dut.out) == pack(want, 1)

    _comb(dut, bench)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
def test_argmax_stage_lowest_index_on_ties(n):
    """The engine's argmax stage, scores drawn from few values so ties are common, with stalls."""
    s = 4
    dut = ArgmaxStage(ArgmaxStagePlan(n, s))
    rng = np.random.default_rng(n)
    cases = [rng.integers(-2, 2, n) for _ in range(120)] + [np.full(n, -8), np.full(n, 7)]
    out, _, _ = run_stream(dut, [pack(c, s) for c in cases], len(cases), in_prob=0.7, out_prob=0.6, seed=n,
                           out_ports=("o.payload.index", "o.payload.scores"))
    assert [o[0] for o in out] == [int(np.argmax(c)) for c in cases]
    assert [o[1] for o in out] == [pack(c, s) for c in cases]


# --------------------------------------------------------------------------- fused leaf


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("direction", [1, -1])
def test_fused_leaf_equals_delta_then_threshold(negate, direction):
    """The fused leaf gives the bit of its delta update followed by the threshold compare, for all inputs and cuts."""
    n, d = 9, 3
    for t in range(-n - 2, n + 3):
        fu = DeltaThreshold(FusedLeaf(DeltaParams.binary(n, d, negate), t, direction, scale=2, ybias=-n))

        async def bench(ctx):
            for p in range(n + 1):
                for q in range(d + 1):
                    v = (n - p if negate else p) + 2 * q - d
                    if not 0 <= v <= n:
                        continue  # unreachable: a popcount of the child's own weights
                    ctx.set(fu.parent, p)
                    ctx.set(fu.corr, q)
                    y = 2 * v - n
                    assert ctx.get(fu.bit) == int(y >= t if direction > 0 else y <= t)

        _comb(fu, bench)
