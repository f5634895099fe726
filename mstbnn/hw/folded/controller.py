"""The schedule walker: reads a layer's packed store record by record.

Each active cycle the controller decodes one step of the current record from
the :class:`~mstbnn.hw.folded.reader.BitReader`'s ``peek`` bits and tells the
datapath what to do:

- a root step: weight chunk ``chunk`` (S bits) for the SIMD XNOR-popcount;
- a child step: up to G correction entries (input index + the child's weight
  bit) for the gather unit, ``count`` of them valid.

The header of a record (flag; for a child: parent slot, length d, negation
flag) is consumed in the same cycle as its first step, so a root takes
ceil(N / S) cycles and a child max(1, ceil(d / G)); see
:mod:`mstbnn.hw.folded.plan`. Records are walked in slot order; after the
window's last step the reader is back at step 0, ready for the next window.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mstbnn.hw.folded.plan import STEP_FLAG_BITS, LayerPlan
from mstbnn.hw.folded.reader import BitReader

__all__ = ["Controller"]


class Controller(wiring.Component):
    """Walks one layer's records once per ``start``.

    Parameters
    ----------
    plan : LayerPlan

    Ports
    -----
    start : In(1)
        Begin a window; this cycle is already its first step (ignored while busy).
    en : In(1)
        Advance; while low in an active cycle, the step is held unchanged.
    ready : Out(1)
        Idle and primed: ``start`` is taken.
    active : Out(1)
        This cycle is a step (``start`` taken, or a window in progress).
    first, last, window_last : Out(1)
        First / last step of the record; last step of the window.
    is_root : Out(1)
    slot : Out(range(C))
    chunk : Out(range(chunks))
    weights : Out(S)
        Root step: the record's weight bits ``[chunk*S, chunk*S + S)``.
    index : Out(G * P)
        Child step: entry g's input index at ``[g*P +: P]``.
    sign : Out(G)
        Child step: entry g's weight bit.
    count : Out(range(G + 1))
        Child step: valid entries (lanes 0..count-1).
    parent : Out(range(C))
        Child: the parent's slot (valid on every step of the record).
    length : Out(range(N + 1))
        Child: d.
    negate : Out(1)
        Child: negation edge.
    """

    def __init__(self, plan: LayerPlan):
        self.plan = plan
        lay = plan.layout
        c, n, s, g = plan.channels, plan.n, plan.simd, plan.gather
        self.has_children = bool((plan.schedule.parent >= 0).any())
        super().__init__(
            {
                "start": In(1),
                "en": In(1),
                "ready": Out(1),
                "active": Out(1),
                "first": Out(1),
                "last": Out(1),
                "window_last": Out(1),
                "is_root": Out(1),
                "slot": Out(range(max(2, c))),
                "chunk": Out(range(max(2, plan.chunks))),
                "weights": Out(s),
                "index": Out(g * lay.index_bits),
                "sign": Out(g),
                "count": Out(range(g + 1)),
                "parent": Out(range(max(2, c))),
                "length": Out(range(n + 1)),
                "negate": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan, lay = self.plan, self.plan.layout
        c, n, s, g = plan.channels, plan.n, plan.simd, plan.gather
        chunks, e, p = plan.chunks, lay.entry_bits, lay.index_bits
        if self.has_children:
            # Every step's pointer and kind are fixed at generation: the reader's step ROM
            # holds them (root, record's last, window's last), so none is decoded from the stream.
            m.submodules.reader = rd = BitReader(plan.packed.bits, plan.word_bits, plan.peek_bits, plan.step_consumes,
                                                 flags=plan.step_flags, flag_bits=STEP_FLAG_BITS)
        else:
            # A plain layer's records all have the same steps (flag + chunk, chunks, the tail
            # chunk): the reader counts them, no step ROM needed.
            m.submodules.reader = rd = BitReader(plan.packed.bits, plan.word_bits, plan.peek_bits,
                                                 record_consumes=plan.step_consumes[: plan.chunks], records=c)
        peek = rd.peek

        running = Signal()
        in_record = Signal()  # a record's header has been consumed
        chunk = Signal(range(max(2, chunks)))
        remaining = Signal(range(n + 1))
        parent_reg = Signal(range(max(2, c)))
        length_reg = Signal(range(n + 1))
        negate_reg = Signal()
        slot = Signal(range(max(2, c)))

        active = Signal()
        m.d.comb += [
            self.ready.eq(~running & rd.primed),
            active.eq(running | (self.start & rd.primed)),
            self.active.eq(active),
            self.first.eq(~in_record),
            self.slot.eq(slot),
        ]
        if self.has_children:
            is_root, last, window_last = rd.flags[0], rd.flags[1], rd.flags[2]
        else:
            is_root, last, window_last = Const(1, 1), Signal(), Signal()
            m.d.comb += [
                last.eq(Mux(in_record, chunk == chunks - 1, chunks == 1)),
                window_last.eq(last & (slot == c - 1)),
            ]
        m.d.comb += [self.is_root.eq(is_root), self.last.eq(last), self.window_last.eq(window_last)]

        # Root steps: S weight bits after the flag (first step) or at the pointer.
        with m.If(~in_record):
            m.d.comb += [self.weights.eq(peek[1 : 1 + s]), self.chunk.eq(0)]
        with m.Else():
            m.d.comb += [self.weights.eq(peek[:s]), self.chunk.eq(chunk)]

        # Child steps: header then entries (first step), or entries at the pointer.
        left = Signal(range(n + 1))  # entries of the record not yet consumed
        if self.has_children:
            h = lay.child_header_bits
            pb, lb, nb = lay.parent_bits, lay.length_bits, lay.negate_bits
            hdr_parent = peek[1 : 1 + pb]
            hdr_length = peek[1 + pb : 1 + pb + lb]
            hdr_negate = peek[1 + pb + lb] if nb else 0
            entries = Signal(g * e)
            with m.If(~in_record):
                m.d.comb += [
                    entries.eq(peek[h : h + g * e]),
                    left.eq(hdr_length),
                    self.parent.eq(hdr_parent),
                    self.length.eq(hdr_length),
                    self.negate.eq(hdr_negate),
                ]
            with m.Else():
                m.d.comb += [
                    entries.eq(peek[: g * e]),
                    left.eq(remaining),
                    self.parent.eq(parent_reg),
                    self.length.eq(length_reg),
                    self.negate.eq(negate_reg),
                ]
            count = Signal(range(g + 1))
            many = Signal()  # more than G entries left: a full batch, not the last step
            many_next = Signal()  # the same for the entries left after this step (registered)
            many_reg = Signal()
            hdr_many = Signal()
            m.d.comb += [
                hdr_many.eq(hdr_length > g),
                many.eq(Mux(in_record, many_reg, hdr_many)),
                many_next.eq(left > 2 * g),
                count.eq(Mux(many, g, left)),
                self.count.eq(count),
            ]
            for k in range(g):
                m.d.comb += [
                    self.index[k * p : (k + 1) * p].eq(entries[k * e : k * e + p]),
                    self.sign[k].eq(entries[k * e + p]),
                ]

        step = Signal()
        m.d.comb += step.eq(active & self.en)
        with m.If(step):
            m.d.comb += rd.advance.eq(1)
            with m.If(last):
                m.d.sync += in_record.eq(0)
                with m.If(window_last):  # (the reader wraps to step 0 by itself)
                    m.d.sync += [slot.eq(0), running.eq(0)]
                with m.Else():
                    m.d.sync += [slot.eq(slot + 1), running.eq(1)]
            with m.Else():
                m.d.sync += [in_record.eq(1), running.eq(1)]
                with m.If(is_root):
                    m.d.sync += chunk.eq(Mux(in_record, chunk + 1, 1))
                with m.Else():
                    m.d.sync += remaining.eq(left - g)
                    if self.has_children:
                        m.d.sync += many_reg.eq(many_next)
            with m.If(~in_record):
                m.d.sync += [parent_reg.eq(self.parent), length_reg.eq(self.length), negate_reg.eq(self.negate)]
        return m
