"""Sequential reader of a packed bit stream held in a synchronous-read memory.

The stream is the layer's packed store (:mod:`mstbnn.compiler.storage`) as
M-bit words. The reader shows the next L <= M bits at its pointer on
``peek`` and advances by ``consume`` bits per cycle (0..L), so any cycle
crosses at most one word boundary.

It keeps words w and w + 1 in a 2M-bit buffer and always has word w + 2 in
flight: the memory address is driven from the *next* word index (w + 2, or
w + 3 when this cycle crosses), so the word needed at a crossing is on the
read port whatever the previous cycle did. ``restart`` rewinds to bit 0 in one cycle with no bubble: words 0 and 1
are constants (the store is a ROM), and word 2 is requested in the same cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from mstbnn.compiler.storage import to_words

__all__ = ["BitReader"]

# Zero words after the stream: the reader requests up to three words past its
# pointer, so no address ever needs a range check.
PAD_WORDS = 5


class BitReader(wiring.Component):
    """Stream reader over a ROM of ``word_bits``-wide words.

    Parameters
    ----------
    bits : array of bool
        The stream.
    word_bits : int
        M, the memory width.
    peek_bits : int
        L, bits shown on ``peek`` (L <= M).

    Ports
    -----
    restart : In(1)
        Rewind to bit 0 (takes precedence over ``consume``).
    consume : In(range(L + 1))
        Bits to advance this cycle.
    peek : Out(L)
        Stream bits [p, p + L) at the current pointer p.
    primed : Out(1)
        Low only in the first cycle after reset (the read port is not loaded yet).
    """

    def __init__(self, bits, word_bits: int, peek_bits: int):
        if peek_bits > word_bits:
            raise ValueError("peek_bits must not exceed word_bits")
        self.word_bits, self.peek_bits = int(word_bits), int(peek_bits)
        self.words = to_words(bits, self.word_bits, extra_words=PAD_WORDS)
        self.depth = len(self.words)
        super().__init__({"restart": In(1), "consume": In(range(self.peek_bits + 1)), "peek": Out(self.peek_bits), "primed": Out(1)})

    def elaborate(self, platform):
        m = Module()
        mw = self.word_bits
        m.submodules.rom = rom = Memory(shape=mw, depth=self.depth, init=self.words)
        rp = rom.read_port()
        start = (self.words[1] << mw) | self.words[0]
        buf = Signal(2 * mw, init=start)
        off = Signal(range(mw))
        primed = Signal()
        m.d.sync += primed.eq(1)
        m.d.comb += self.primed.eq(primed)

        m.d.comb += self.peek.eq(buf.bit_select(off, self.peek_bits))
        total = Signal(range(2 * mw + 1))
        m.d.comb += total.eq(off + self.consume)
        pow2 = mw & (mw - 1) == 0
        cross = total[(mw - 1).bit_length()] if pow2 and mw > 1 else total >= mw
        # Word w + 2 is always requested, so it is on rp.data when the pointer crosses.
        # w + 2 and w + 3 are kept in registers: the address is then a mux, not an
        # adder, at the end of the pointer loop.
        ahead2 = Signal(range(self.depth), init=2)
        ahead3 = Signal(range(self.depth), init=3)
        with m.If(self.restart):
            m.d.comb += rp.addr.eq(2)
            m.d.sync += [buf.eq(Const(start, 2 * mw)), off.eq(0), ahead2.eq(2), ahead3.eq(3)]
        with m.Elif(cross):
            m.d.comb += rp.addr.eq(ahead3)
            m.d.sync += [
                buf.eq(Cat(buf[mw:], rp.data)),
                off.eq(total[: (mw - 1).bit_length()] if pow2 and mw > 1 else total - mw),
                ahead2.eq(ahead3),
                ahead3.eq(ahead3 + 1),
            ]
        with m.Else():
            m.d.comb += rp.addr.eq(ahead2)
            m.d.sync += off.eq(total)
        return m
