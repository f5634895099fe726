"""Sequential argmax stage: one comparator, one class per cycle.

The unrolled engine's :class:`~mstbnn.hw.layers.ArgmaxStage` compares all
scores in one combinational tree, which is fine at one image per cycle but
was the critical path of every folded design measured (10 classes: 42-47 MHz
against 52 MHz for the folded core). A folded engine spends thousands of
cycles per image, so scanning the classes one per cycle costs nothing in
throughput and keeps the comparator path short.

Flow (exact; mirrored in :mod:`mstbnn.hw.folded.timing`)::

    in_ready = not busy
    handshake (cycle t): scores registered, best = class 0, k = 1, busy
    cycles t+1 .. t+C-1: compare class k against the best (strictly greater
                         wins, so ties keep the lowest index), k += 1
    first cycle with k == C and the output register free: load the class index
                         and the scores into the output, o.valid; busy drops
    latency C + 1 cycles, one image per C + 1 cycles
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import wiring

from mstbnn.hw.components import argmax_payload, stage_signature
from mstbnn.hw.folded.plan import SequentialArgmaxPlan
from mstbnn.hw.stage_plan import class_index_width

__all__ = ["SequentialArgmax"]


class SequentialArgmax(wiring.Component):
    """Scores in, (class, scores) out; lowest index on ties.

    Ports: stream ``i`` (class c's signed score at ``[c*score_width +: score_width]``), stream ``o``
    (:func:`~mstbnn.hw.components.argmax_payload`: the same scores and the class index).
    """

    def __init__(self, plan: SequentialArgmaxPlan):
        self.plan = plan
        super().__init__(stage_signature(plan.in_width, argmax_payload(plan.classes, plan.score_width)))

    def elaborate(self, platform):
        m = Module()
        c, s = self.plan.classes, self.plan.score_width
        scores = Signal(c * s)
        table = Array([scores[i * s : (i + 1) * s].as_signed() for i in range(c)])
        busy = Signal()
        k = Signal(range(c + 1))
        best = Signal(signed(s))
        best_idx = Signal(class_index_width(c))
        m.d.comb += self.i.ready.eq(~busy)
        out_free = ~self.o.valid | self.o.ready
        done = busy & (k == c) & out_free
        with m.If(done):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.index.eq(best_idx), self.o.payload.scores.eq(scores), busy.eq(0)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & ~busy):
            m.d.sync += [
                scores.eq(self.i.payload),
                best.eq(self.i.payload[:s].as_signed()),
                best_idx.eq(0),
                k.eq(1),
                busy.eq(1),
            ]
        with m.Elif(busy & (k < c)):
            cand = table[k]
            with m.If(cand > best):
                m.d.sync += [best.eq(cand), best_idx.eq(k)]
            m.d.sync += k.eq(k + 1)
        return m
