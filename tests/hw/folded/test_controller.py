"""Bit reader and schedule walker against naive Python walks of the packed store."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from mstbnn.compiler.mst import build_schedule
from mstbnn.compiler.random import similar_weights
from mstbnn.compiler.schedule import Schedule
from mstbnn.hw.folded.controller import Controller
from mstbnn.hw.folded.plan import LayerPlan
from mstbnn.hw.folded.reader import BitReader


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _check_reader(dut, bits, consumes, rng, flags=None, windows=4):
    """Random stalls over several windows: at every step, peek is the stream at that step's pointer (and its flags)."""
    padded = np.concatenate([bits, np.zeros(4 * dut.word_bits + 2 * dut.peek_bits, dtype=bool)])
    pointers = np.concatenate([[0], np.cumsum(consumes)[:-1]]).astype(int)
    seen = []

    async def bench(ctx):
        await ctx.tick()  # the read ports load in the first cycle after reset
        k = 0
        for _ in range(windows * 2 * len(consumes) + 20):
            advance = rng.random() < 0.6
            ctx.set(dut.advance, int(advance))
            assert ctx.get(dut.primed) == 1
            ptr = int(pointers[k])
            want = sum(int(b) << i for i, b in enumerate(padded[ptr : ptr + dut.peek_bits]))
            got_flags = ctx.get(dut.flags) if flags is not None else None
            seen.append((k, ptr, ctx.get(dut.peek), want, got_flags))
            await ctx.tick()
            if advance:
                k = (k + 1) % len(consumes)  # past the window's last step: step 0, by itself

    _run(dut, bench)
    bad = [s for s in seen if s[2] != s[3]]
    assert not bad, f"first mismatch at step {bad[0][0]} (bit {bad[0][1]}): got {bad[0][2]:#x}, want {bad[0][3]:#x}"
    if flags is not None:
        assert all(f == flags[k] for k, _, _, _, f in seen)
    assert len({k for k, *_ in seen}) == len(consumes)  # every step was visited


@pytest.mark.parametrize("n_bits,word,peek", [(1, 1, 1), (37, 8, 8), (200, 13, 9), (300, 40, 40), (500, 64, 33)])
def test_reader_peeks_the_stream_at_each_steps_pointer(n_bits, word, peek):
    """Random step sizes fixed at generation (crossing or not, the first and last included), random stalls."""
    rng = np.random.default_rng(n_bits)
    bits = rng.integers(0, 2, n_bits).astype(bool)
    consumes = []
    while sum(consumes) < n_bits:
        consumes.append(int(rng.integers(0, peek + 1)))
    consumes[-1] = peek  # a full-width step, crossing or not
    if n_bits > 1:
        consumes[0] = word if peek == word else consumes[0]  # step 0 crossing into word 1 where it can
    flags = rng.integers(0, 8, len(consumes)).tolist()
    dut = BitReader(bits, word, peek, consumes, flags=flags, flag_bits=3)
    _check_reader(dut, bits, consumes, rng, flags)


@pytest.mark.parametrize("records,chunks", [(1, 1), (3, 1), (1, 2), (4, 3), (5, 6)])
@pytest.mark.parametrize("word,peek", [(8, 8), (16, 9), (40, 33)])
def test_reader_repeats_a_records_steps(records, chunks, word, peek):
    """The plain layers' mode: every record's steps consume [first, middle..., last]; random stalls."""
    rng = np.random.default_rng(records * 10 + chunks + word)
    record = [int(rng.integers(1, peek + 1))]
    if chunks > 1:
        middle = int(rng.integers(1, peek + 1))
        record += [middle] * (chunks - 2) + [int(rng.integers(1, peek + 1))]
    consumes = record * records
    bits = rng.integers(0, 2, sum(consumes)).astype(bool)
    dut = BitReader(bits, word, peek, record_consumes=record, records=records)
    _check_reader(dut, bits, consumes, rng)


def test_reader_refuses_a_record_that_is_not_first_middle_last():
    with pytest.raises(ValueError, match="record_consumes"):
        BitReader(np.ones(12, dtype=bool), 8, 8, record_consumes=[3, 2, 4, 3], records=1)


def test_step_consumes_add_up_to_the_stream_and_fit_the_peek():
    for variant in ("mst", "plain", "negation"):
        plan = _plan(12, 50, 16, 3, variant)
        steps = plan.step_consumes
        assert len(steps) == plan.window_cycles
        assert int(steps.sum()) == plan.storage_bits == len(plan.packed.bits)
        assert 0 < steps.min() and steps.max() <= plan.peek_bits


def expected_steps(plan: LayerPlan):
    """The controller's steps for one window, by a naive walk of the schedule."""
    sched, n, s, g = plan.schedule, plan.n, plan.simd, plan.gather
    steps = []
    for slot, j in enumerate(sched.order.tolist()):
        cyc = int(plan.record_cycles[slot])
        for t in range(cyc):
            last = t == cyc - 1
            if sched.parent[j] < 0:
                lo = t * s
                w = plan.weights[j, lo : lo + s]
                steps.append(("root", slot, t == 0, last, t, sum(int(b) << i for i, b in enumerate(w))))
            else:
                pos = sched.positions[j][t * g : (t + 1) * g]
                entries = tuple((int(k), int(plan.weights[j, k])) for k in pos)
                parent_slot = int(np.flatnonzero(sched.order == sched.parent[j])[0])
                steps.append(("child", slot, t == 0, last, parent_slot, len(sched.positions[j]), bool(sched.negate[j]), entries))
    return steps


def _plan(c, n, s, g, variant, seed=0):
    rng = np.random.default_rng(seed)
    w = similar_weights(rng, c, n, flip=0.08)
    if variant == "negation":
        w = w ^ (np.arange(c) % 2 == 1)[:, None]
        sched = build_schedule(w, negation=True)
    elif variant == "plain":
        sched = Schedule.plain(c)
    else:
        sched = build_schedule(w)
    return LayerPlan(w, sched, s, g)


@pytest.mark.parametrize(
    "c,n,s,g,variant",
    [(4, 9, 4, 1, "mst"), (8, 27, 8, 2, "mst"), (16, 36, 36, 3, "negation"), (6, 20, 7, 2, "plain"), (12, 64, 16, 4, "mst")],
)
def test_controller_walks_the_schedule(c, n, s, g, variant):
    plan = _plan(c, n, s, g, variant, seed=c + n)
    dut = Controller(plan)
    want = expected_steps(plan)
    assert len(want) == plan.window_cycles
    got = []
    p = plan.layout.index_bits

    async def bench(ctx):
        ctx.set(dut.en, 1)
        while not ctx.get(dut.ready):
            await ctx.tick()
        for window in range(2):  # the reader must rewind for a second pass
            ctx.set(dut.start, 1)
            steps = []
            for _ in range(len(want) + 2):
                if not ctx.get(dut.active):
                    break
                slot, first, last = ctx.get(dut.slot), bool(ctx.get(dut.first)), bool(ctx.get(dut.last))
                if ctx.get(dut.is_root):
                    chunk = ctx.get(dut.chunk)
                    valid = min(plan.simd, plan.n - chunk * plan.simd)  # bits past N belong to the next record
                    steps.append(("root", slot, first, last, chunk, ctx.get(dut.weights) & ((1 << valid) - 1)))
                else:
                    cnt, idx, sgn = ctx.get(dut.count), ctx.get(dut.index), ctx.get(dut.sign)
                    entries = tuple((((idx >> (k * p)) & ((1 << p) - 1)), (sgn >> k) & 1) for k in range(cnt))
                    steps.append(("child", slot, first, last, ctx.get(dut.parent), ctx.get(dut.length), bool(ctx.get(dut.negate)), entries))
                assert ctx.get(dut.window_last) == (len(steps) == len(want))
                # A random hold on the window's last step must not change anything.
                if ctx.get(dut.window_last) and window == 0:
                    ctx.set(dut.en, 0)
                    await ctx.tick()
                    ctx.set(dut.en, 1)
                    assert ctx.get(dut.active) and ctx.get(dut.window_last)
                await ctx.tick()
                ctx.set(dut.start, 0)
            got.append(steps)
            await ctx.tick()  # one idle cycle between windows

    _run(dut, bench)
    for steps in got:
        assert len(steps) == len(want)
        for k, (a, b) in enumerate(zip(steps, want)):
            assert a == b, f"step {k}: got {a}, want {b}"
