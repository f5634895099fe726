"""A tiny engine with the hw stream port contract, for testing the boards flow alone.

Class c's score is the sum of the input values f with f % classes == c; one
registered stage; the class is the lowest index of the maximum.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class StandInEngine(wiring.Component):
    def __init__(self, features: int = 8, value_width: int = 4, classes: int = 3, is_signed: bool = False):
        self.features, self.classes, self.is_signed = features, classes, is_signed
        self.input_width = value_width
        per_class = -(-features // classes)
        self.score_width = value_width + max(1, per_class.bit_length()) + 1
        self.latency = 1
        self.initiation_interval = 1
        super().__init__({
            "in_valid": In(1), "in_ready": Out(1), "in_data": In(features * value_width),
            "out_valid": Out(1), "out_ready": In(1),
            "out_class": Out(max(1, (classes - 1).bit_length())),
            "out_scores": Out(classes * self.score_width),
        })

    def resource_estimate(self, family):
        return {"luts": self.features * self.input_width, "carry": self.features * self.input_width // 2,
                "ffs": self.classes * self.score_width + 8}

    def golden(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.int64)
        scores = np.stack([x[:, c::self.classes].sum(axis=1) for c in range(self.classes)], axis=1)
        return scores, np.argmax(scores, axis=1)

    def elaborate(self, platform):
        m = Module()
        w, s = self.input_width, self.score_width
        shape = signed(w) if self.is_signed else unsigned(w)
        vals = [self.in_data[f * w:(f + 1) * w].as_signed() if self.is_signed else self.in_data[f * w:(f + 1) * w]
                for f in range(self.features)]
        sums = []
        for c in range(self.classes):
            acc = Signal(signed(s), name=f"sum{c}")
            m.d.comb += acc.eq(sum(vals[c::self.classes]))
            sums.append(acc)
        best = sums[0]
        best_i = 0
        idx = Signal(len(self.out_class), name="idx0")
        m.d.comb += idx.eq(0)
        for c in range(1, self.classes):
            nb = Signal(signed(s), name=f"best{c}")
            ni = Signal(len(self.out_class), name=f"idx{c}")
            m.d.comb += [nb.eq(best), ni.eq(idx)]
            with m.If(sums[c] > best):
                m.d.comb += [nb.eq(sums[c]), ni.eq(c)]
            best, idx = nb, ni
        m.d.comb += self.in_ready.eq(~self.out_valid | self.out_ready)
        with m.If(self.out_valid & self.out_ready):
            m.d.sync += self.out_valid.eq(0)
        with m.If(self.in_valid & self.in_ready):
            m.d.sync += [self.out_valid.eq(1), self.out_class.eq(idx)]
            for c in range(self.classes):
                m.d.sync += self.out_scores[c * s:(c + 1) * s].eq(sums[c])
        del shape
        return m
