"""One folded binary layer as a valid/ready stream stage.

Front end (shared with the unrolled engine): a vector register, a conv
:class:`~mstbnn.hw.components.WindowGenerator` or a
:class:`~mstbnn.hw.components.Collector`. It is frozen while it holds a
window the core still reads, so the window stays stable without a copy::

    en_front = ~window_valid | release     release = the datapath has the window's last step

Core, four pipeline stages:

A. *walk*: the :class:`~mstbnn.hw.folded.controller.Controller` decodes one
   step of the current record from the packed store per cycle (registered);
B1. *datapath, first half*: the step's SIMD chunk (root) or gather batch
   (child) is selected from the window, XNORed and summed up to the
   register level inside the adder tree (:mod:`mstbnn.hw.folded.datapath`);
B2. *datapath, second half*: the rest of the tree is added into the
   accumulator; the parent's value and the slot's threshold are read from
   their memories;
C. *finish* (the cycle after a record's last datapath step): a child
   combines its correction with its parent's value (``v = base + 2 q - d``
   with ``base = p_i`` or ``N - p_i`` for bits, ``v = +-y_i + 2 corr`` for
   integers); the value is written back to the sums memory (slot-indexed,
   read-during-write transparent, so a child can follow its parent
   directly), thresholded and shifted into the result register. The
   window's last finish loads the output register, bits wired in channel order.

The walk of the next window starts once the front end has moved on (one
bubble per window, see :mod:`mstbnn.hw.folded.timing`); a window's last walk
step waits until the previous window has reached the output register and
that register is free, which is the only stall.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from mstbnn.hw.components import Collector, WindowGenerator, quantize, shape_of, stage_signature
from mstbnn.hw.folded.controller import Controller
from mstbnn.hw.folded.datapath import GatherUnit, SimdXnorPopcount
from mstbnn.hw.folded.plan import FoldedStagePlan, LayerPlan

__all__ = ["FoldedStage", "threshold_table"]


def threshold_table(plan: LayerPlan, threshold) -> tuple[list[int], list[int], tuple[int, int]]:
    """Per-slot (cut, direction) in the hardware value domain, cuts clamped into [lo - 1, hi + 2].

    ``bit = v - cut >= 0`` (direction +1) or ``v - cut < 0`` (-1), so the
    hardware needs only the sign of one subtraction; a threshold outside the
    value range clamps to a cut that gives the same constant bit.
    """
    lo, hi = plan.value_range
    scale, bias = (2, -plan.n) if plan.binary else (1, 0)
    cuts, dirs = [], []
    for j in plan.schedule.order.tolist():
        num = int(threshold.threshold[j]) - bias  # y >= t  <=>  v >= ceil((t - bias) / scale)
        up = int(threshold.direction[j]) > 0
        cut = -((-num) // scale) if up else num // scale + 1  # y <= t  <=>  v < floor((t - bias) / scale) + 1
        cuts.append(int(min(max(cut, lo - 1), hi + 2)))
        dirs.append(1 if up else 0)
    return cuts, dirs, (lo - 1, hi + 2)


class FoldedStage(wiring.Component):
    """A binary layer (with its threshold) or the score layer, folded: emits its :class:`FoldedStagePlan`."""

    def __init__(self, plan: FoldedStagePlan):
        self.plan = plan
        super().__init__(stage_signature(plan.in_width, plan.out_width))

    # -- front end ------------------------------------------------------------------------

    def _front(self, m, en):
        layer, q = self.plan.layer, self.plan.quantizer
        b = layer.elem_bits
        kind = self.plan.front["kind"]
        if kind == "vector":
            x0 = Signal(layer.n * b, name="x0")
            valid0 = Signal(name="valid0")
            with m.If(en):
                m.d.sync += [x0.eq(quantize(self.i.payload, q, self.plan.front, layer.n)), valid0.eq(self.i.valid)]
            m.d.comb += self.i.ready.eq(en)
            return x0, valid0
        f = self.plan.front
        if kind == "window":
            m.submodules.window = wg = WindowGenerator(
                f["channels"], f["height"], f["width"], f["kernel"], f["stride"], f["padding"], elem_bits=b
            )
            m.d.comb += [
                wg.en.eq(en),
                wg.in_valid.eq(self.i.valid),
                self.i.ready.eq(wg.in_ready),
                wg.in_data.eq(quantize(self.i.payload, q, self.plan.front, layer.n, wg.in_index)),
            ]
            return wg.window, wg.window_valid
        m.submodules.collect = col = Collector(f["channels"], f["height"], f["width"], elem_bits=b)
        m.d.comb += [col.en.eq(en), col.in_valid.eq(self.i.valid), self.i.ready.eq(col.in_ready), col.in_data.eq(self.i.payload)]
        return col.out, col.out_valid

    # -- core -----------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        plan, layer = self.plan, self.plan.layer
        c, n = layer.channels, layer.n
        en_front = Signal()
        x, window_valid = self._front(m, en_front)

        # -- stage A: walk the store ---------------------------------------------------
        m.submodules.ctrl = ctrl = Controller(layer)
        taken = Signal()  # the held window's walk is complete; the datapath still reads it
        pending = Signal()  # a walked window has not reached the output register yet
        out_free = ~self.o.valid | self.o.ready
        step = Signal()
        m.d.comb += [
            ctrl.start.eq(window_valid & ~taken),
            ctrl.en.eq(~ctrl.window_last | (~pending & out_free)),
            step.eq(ctrl.active & ctrl.en),
        ]

        # -- stage B1: select one SIMD chunk or one gather batch, first half of its sum --
        b_valid = Signal()
        # What stage B2 and the finish read; B1 itself reads the datapath inputs.
        carried = ["first", "last", "window_last", "is_root", "slot", "parent", "length", "negate"]
        fields = carried + ["chunk", "weights", "index", "sign", "count"]
        b = {f: Signal.like(getattr(ctrl, f), name=f"b_{f}") for f in fields}
        m.d.sync += b_valid.eq(step)
        with m.If(step):
            m.d.sync += [b[f].eq(getattr(ctrl, f)) for f in fields]
        release = Signal()
        m.d.comb += [release.eq(b_valid & b["window_last"]), en_front.eq(~window_valid | release)]
        with m.If(step & ctrl.window_last):
            m.d.sync += [taken.eq(1), pending.eq(1)]
        with m.If(release):
            m.d.sync += taken.eq(0)

        dom = dict(elem_bits=layer.elem_bits, binary=layer.binary, elem_signed=layer.elem_signed)
        m.submodules.simd = simd = SimdXnorPopcount(n, layer.simd, **dom)
        m.d.comb += [simd.window.eq(x), simd.chunk.eq(b["chunk"]), simd.weights.eq(b["weights"])]
        if plan.has_children:
            m.submodules.gather = gat = GatherUnit(n, layer.gather, layer.layout.index_bits, **dom)
            m.d.comb += [gat.window.eq(x), gat.index.eq(b["index"]), gat.sign.eq(b["sign"]), gat.count.eq(b["count"])]

        # -- stage B2: the rest of the sum into the accumulator --------------------------
        # Both units' sums are of the step one cycle earlier, the step now in B2.
        b2_valid = Signal()
        b2 = {f: Signal.like(b[f], name=f"b2_{f}") for f in carried}
        m.d.sync += [b2_valid.eq(b_valid)] + [b2[f].eq(b[f]) for f in carried]
        if plan.has_children:
            step_sum = Signal(shape_of(min(simd.sum_range[0], gat.sum_range[0], 0), max(simd.sum_range[1], gat.sum_range[1])))
            m.d.comb += step_sum.eq(Mux(b2["is_root"], simd.sum, gat.sum))
        else:
            step_sum = Signal(shape_of(min(simd.sum_range[0], 0), simd.sum_range[1]))
            m.d.comb += step_sum.eq(simd.sum)

        vlo, vhi = layer.value_range
        vshape = shape_of(min(vlo, 0), vhi)
        acc = Signal(vshape)
        acc_next = Signal(vshape)
        m.d.comb += acc_next.eq(Mux(b2["first"], 0, acc) + step_sum)

        # -- stage C: finish a record ----------------------------------------------------
        f_valid, f_root, f_neg, f_wlast = Signal(), Signal(), Signal(), Signal()
        f_raw = Signal(vshape)
        f_len = Signal(range(n + 1))
        f_slot = Signal(range(max(2, c)))
        m.d.sync += f_valid.eq(b2_valid & b2["last"])
        with m.If(b2_valid):
            m.d.sync += acc.eq(acc_next)
            with m.If(b2["last"]):
                m.d.sync += [
                    f_raw.eq(acc_next),
                    f_root.eq(b2["is_root"]),
                    f_neg.eq(b2["negate"]),
                    f_len.eq(b2["length"]),
                    f_wlast.eq(b2["window_last"]),
                    f_slot.eq(b2["slot"]),
                ]

        # A child's value is its parent's (from the sums memory, whose read port is slow)
        # plus a correction: everything but one add after the memory is computed beside
        # it, and the threshold needs only the sign of (value - cut), folded into that add.
        if layer.binary:  # v = base + 2 q - d, base = p or N - p
            corr = 2 * f_raw - f_len
            offset = n
        else:  # v = +-y + 2 corr
            corr = 2 * f_raw
            offset = 0

        def child_minus(sub):  # the child's value minus ``sub``, one add after the memory
            return Mux(f_neg, (offset + corr - sub) - parent, parent + (corr - sub))

        value = Signal(vshape)
        if plan.has_children:
            m.submodules.sums = sums = Memory(shape=vshape, depth=c, init=[])
            wp = sums.write_port()
            rp = sums.read_port(transparent_for=(wp,))
            # Read in stage B2 (held over the record's steps), used in stage C; a parent
            # finishing in that same cycle is forwarded by the transparent port.
            m.d.comb += [rp.addr.eq(b2["parent"]), wp.addr.eq(f_slot), wp.data.eq(value), wp.en.eq(f_valid)]
            parent = rp.data
            m.d.comb += value.eq(Mux(f_root, f_raw, child_minus(0)))
        else:
            m.d.comb += value.eq(f_raw)

        slot_of = np.empty(c, dtype=np.int64)
        slot_of[layer.schedule.order] = np.arange(c)
        if plan.threshold is not None:
            cuts, dirs, (clo, chi) = threshold_table(layer, plan.threshold)
            cshape = shape_of(clo, chi)
            cw = cshape.width
            entries = [(cut & ((1 << cw) - 1)) | (d << cw) for cut, d in zip(cuts, dirs)]
            m.submodules.thresholds = table = Memory(shape=cw + 1, depth=c, init=entries)
            tp = table.read_port()
            m.d.comb += tp.addr.eq(b2["slot"])  # read in stage B2, used in stage C
            cut = tp.data[:cw].as_signed() if cshape.signed else tp.data[:cw]
            margin = Signal(shape_of(min(vlo - chi, -1), max(vhi - clo, 0)))  # v - cut, exactly
            own = f_raw - cut
            m.d.comb += margin.eq(Mux(f_root, own, child_minus(cut)) if plan.has_children else own)
            bit = Signal()
            m.d.comb += bit.eq(margin[-1] ^ tp.data[cw])  # up: v - cut >= 0; down: v - cut < 0
            res = Signal(c)
            res_next = Cat(res[1:], bit) if c > 1 else bit
            outs = [res_next[int(slot_of[j])] for j in range(c)]
        else:
            sw = plan.score_width
            y = Signal(signed(sw))
            m.d.comb += y.eq(value * 2 - n if layer.binary else value)
            res = Signal(c * sw)
            res_next = Cat(res[sw:], y) if c > 1 else y
            outs = [res_next[int(slot_of[j]) * sw : (int(slot_of[j]) + 1) * sw] for j in range(c)]
        with m.If(f_valid):
            m.d.sync += res.eq(res_next)
        with m.If(f_valid & f_wlast):
            m.d.sync += [self.o.payload.eq(Cat(*outs)), self.o.valid.eq(1), pending.eq(0)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
