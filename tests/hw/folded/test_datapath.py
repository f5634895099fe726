"""SIMD XNOR-popcount and gather unit against naive numpy models."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mstbnn.hw.folded.datapath import GatherUnit, SimdXnorPopcount


def _elem_range(bits, binary, signed):
    if binary:
        return 0, 1
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _pack(values, bits):
    mask = (1 << bits) - 1
    return sum((int(v) & mask) << (i * bits) for i, v in enumerate(values))


def _naive(x, w, binary):
    if binary:
        return int(np.sum(x == w))  # XNOR popcount
    return int(np.sum(np.where(w, x, -x)))



DOMAINS = [(1, True, False), (4, False, False), (3, False, True)]


@pytest.mark.parametrize("n,s", [(1, 1), (9, 4), (16, 16), (27, 8), (40, 7)])
@pytest.mark.parametrize("bits,binary,signed", DOMAINS)
def test_simd_chunk_sums(n, s, bits, binary, signed):
    rng = np.random.default_rng(n * 10 + s)
    dut = SimdXnorPopcount(n, s, elem_bits=bits, binary=binary, elem_signed=signed)
    cases = []
    for _ in range(6):
        lo, hi = _elem_range(bits, binary, signed)
        x = rng.integers(lo, hi + 1, n)
        w = rng.integers(0, 2, n).astype(bool)
        for chunk in range(dut.chunks):
            sl = slice(chunk * s, min(n, chunk * s + s))
            wc = np.zeros(s, dtype=bool)
            wc[: sl.stop - sl.start] = w[sl]
            wc[sl.stop - sl.start :] = rng.integers(0, 2, s - (sl.stop - sl.start)).astype(bool)  # garbage past N
            cases.append((x, chunk, wc, _naive(x[sl], w[sl], binary)))
    # the worst cases: every term agreeing, every term disagreeing
    lo, hi = _elem_range(bits, binary, signed)
    for val in (lo, hi):
        x = np.full(n, val)
        for w in (np.ones(n, dtype=bool), np.zeros(n, dtype=bool)):
            cases.append((x, 0, w[:s], _naive(x[:s], w[:s], binary)))

    def apply(ctx, case):
        x, chunk, wc, _ = case
        ctx.set(dut.window, _pack(x, bits))
        ctx.set(dut.chunk, chunk)
        ctx.set(dut.weights, _pack(wc, 1))

    _run(dut, cases, apply)


@pytest.mark.parametrize("n,g", [(1, 1), (9, 2), (27, 3), (64, 4), (100, 5)])
@pytest.mark.parametrize("bits,binary,signed", DOMAINS)
def test_gather_sums_selected_positions(n, g, bits, binary, signed):
    rng = np.random.default_rng(n * 7 + g)
    p = max(1, int(np.ceil(np.log2(n)))) if n > 1 else 1
    dut = GatherUnit(n, g, p, elem_bits=bits, binary=binary, elem_signed=signed)
    lo, hi = _elem_range(bits, binary, signed)
    cases = []
    for _ in range(25):
        x = rng.integers(lo, hi + 1, n)
        idx = rng.integers(0, n, g)
        sign = rng.integers(0, 2, g).astype(bool)
        count = int(rng.integers(0, g + 1))
        cases.append((x, idx, sign, count, _naive(x[idx[:count]], sign[:count], binary)))
    for val in (lo, hi):
        x = np.full(n, val)
        for sgn in (True, False):
            cases.append((x, np.arange(g) % n, np.full(g, sgn), g, _naive(x[np.arange(g) % n], np.full(g, sgn), binary)))

    def apply(ctx, case):
        x, idx, sign, count, _ = case
        ctx.set(dut.window, _pack(x, bits))
        ctx.set(dut.index, _pack(idx, p))
        ctx.set(dut.sign, _pack(sign, 1))
        ctx.set(dut.count, count)

    _run(dut, cases, apply)


def _run(dut, cases, apply):
    """One case per cycle; each sum is the previous cycle's inputs' (the tree's pipeline register)."""

    async def bench(ctx):
        previous = None
        for case in cases:
            apply(ctx, case)
            await ctx.delay(1e-9)
            if previous is not None:
                assert ctx.get(dut.sum) == previous  # new inputs do not reach the sum before the edge
            await ctx.tick()
            assert ctx.get(dut.sum) == case[-1]
            previous = case[-1]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
