"""Sequential reader of a packed bit stream held in a synchronous-read memory.

The stream is the layer's packed store (:mod:`mstbnn.compiler.storage`) as
M-bit words. The reader shows the L <= M bits at its pointer on ``peek``;
each ``advance`` moves on by that step's consumption (at most L <= M bits,
so a step crosses at most one word boundary), in one of two modes:

- *step table* (``consumes`` given, layers with children): every step's
  consumption is fixed at generation
  (:attr:`~mstbnn.hw.folded.plan.LayerPlan.step_consumes`), so is every
  step's pointer; the bit offset and whether the step crosses into the next
  word come from a small step ROM indexed by the step number (read one step
  ahead into a register), not from an adder fed by the decoded header. That
  takes the pointer out of the loop pointer -> funnel shifter -> header
  decode -> bits consumed -> pointer, which set the folded engine's clock;
- *adder* (plain layers): the pointer adds ``consume``, which the controller
  derives from its own registers.

It keeps words w and w + 1 in a 2M-bit buffer and always has word w + 2 in
flight: the memory address is driven from the *next* word index (w + 2, or
w + 3 when this step crosses), so the word needed at a crossing is on the
read port whatever the previous cycle did. ``restart`` rewinds to step 0 in
one cycle with no bubble: words 0 and 1 are constants (the store is a ROM),
and word 2 is requested in the same cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from mstbnn.compiler.storage import to_words
from mstbnn.hw.folded.plan import step_entry_bits

__all__ = ["BitReader", "step_table"]

# Zero words after the stream: the reader requests up to three words past its
# pointer, so no address ever needs a range check.
PAD_WORDS = 5


def step_table(consumes, word_bits: int) -> list[tuple[int, bool]]:
    """Per step: (bit offset within the current word, whether the step's consumption crosses into the next)."""
    out, off = [], 0
    for take in consumes:
        take = int(take)
        if not 0 <= take <= word_bits:
            raise ValueError(f"a step consumes {take} bits; the reader takes 0..{word_bits}")
        out.append((off, off + take >= word_bits))
        off = (off + take) % word_bits
    return out


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
    consumes : sequence of int, optional
        Bits each step consumes (0..L), steps 0, 1, ...; ``restart`` returns to step 0.
        Without it, each ``advance`` moves by ``consume`` bits (an adder in the pointer's loop).
    flags : sequence of int, optional
        Per step, ``flag_bits`` bits of the user's own (e.g. the step's kind), shown on ``flags``.
    flag_bits : int

    Ports
    -----
    restart : In(1)
        Rewind to step 0 (takes precedence over ``advance``).
    advance : In(1)
        Move on to the next step.
    peek : Out(L)
        Stream bits [p, p + L) at the current step's pointer p.
    primed : Out(1)
        Low only in the first cycle after reset (the read ports are not loaded yet).
    flags : Out(flag_bits)
        With ``consumes``: the current step's flags (from a register, like the pointer).
    consume : In(range(L + 1))
        Without ``consumes``: bits the next ``advance`` moves by.
    """

    def __init__(self, bits, word_bits: int, peek_bits: int, consumes=None, flags=None, flag_bits: int = 0):
        if peek_bits > word_bits:
            raise ValueError("peek_bits must not exceed word_bits")
        self.word_bits, self.peek_bits = int(word_bits), int(peek_bits)
        self.words = to_words(bits, self.word_bits, extra_words=PAD_WORDS)
        self.depth = len(self.words)
        self.stepped = consumes is not None
        ports = {"restart": In(1), "advance": In(1), "peek": Out(self.peek_bits), "primed": Out(1)}
        if self.stepped:
            if any(int(t) > self.peek_bits for t in consumes):
                raise ValueError("a step consumes more than peek_bits")
            self.steps = step_table(consumes, self.word_bits) or [(0, False)]
            self.flag_bits = int(flag_bits)
            self.flags_init = [int(f) for f in flags] if flags is not None else [0] * len(self.steps)
            if len(self.flags_init) != len(self.steps) or any(not 0 <= f < (1 << self.flag_bits) for f in self.flags_init):
                raise ValueError(f"flags: one value in 0..{(1 << self.flag_bits) - 1} per step")
            ports["flags"] = Out(max(1, self.flag_bits))
        else:
            ports["consume"] = In(range(self.peek_bits + 1))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        mw = self.word_bits
        m.submodules.rom = rom = Memory(shape=mw, depth=self.depth, init=self.words)
        rp = rom.read_port()
        ob = max(1, (mw - 1).bit_length())  # bits of an offset in 0..M-1
        start = (self.words[1] << mw) | self.words[0]
        buf = Signal(2 * mw, init=start)
        primed = Signal()
        m.d.sync += primed.eq(1)
        m.d.comb += self.primed.eq(primed)

        if self.stepped:
            # The step ROM runs one step ahead: ``cur`` (a register) holds this step's offset
            # and crossing flag, the ROM's read port the next step's, so the pointer is a
            # flip-flop and the ROM only feeds ``cur``.
            n_steps = len(self.steps)
            entries = [off | (int(cross) << ob) | (f << (ob + 1)) for (off, cross), f in zip(self.steps, self.flags_init)]
            width = step_entry_bits(mw, self.flag_bits)
            m.submodules.step_rom = step_rom = Memory(shape=width, depth=n_steps, init=entries)
            sp = step_rom.read_port()
            cur = Signal(width, init=entries[0])
            step = Signal(range(max(2, n_steps)))
            next1, next2 = Signal.like(step), Signal.like(step)
            m.d.comb += [next1.eq(Mux(step == n_steps - 1, 0, step + 1)), next2.eq(Mux(next1 == n_steps - 1, 0, next1 + 1))]
            off, cross = cur[:ob], cur[ob]
            if self.flag_bits:
                m.d.comb += self.flags.eq(cur[ob + 1 :])
            with m.If(self.restart):
                m.d.comb += sp.addr.eq(1 % n_steps)
                m.d.sync += [step.eq(0), cur.eq(entries[0])]
            with m.Elif(self.advance):
                m.d.comb += sp.addr.eq(next2)
                m.d.sync += [step.eq(next1), cur.eq(sp.data)]
            with m.Else():
                m.d.comb += sp.addr.eq(next1)
        else:
            # The pointer advances by ``consume``: for a layer whose every step's
            # consumption the controller knows from its own registers (a plain layer).
            off = Signal(range(mw))
            total = Signal(range(2 * mw + 1))
            m.d.comb += total.eq(off + self.consume)
            pow2 = mw & (mw - 1) == 0
            cross = total[(mw - 1).bit_length()] if pow2 and mw > 1 else total >= mw
            with m.If(self.restart):
                m.d.sync += off.eq(0)
            with m.Elif(self.advance):
                m.d.sync += off.eq(total[: (mw - 1).bit_length()] if pow2 and mw > 1 else Mux(cross, total - mw, total))
        m.d.comb += self.peek.eq(buf.bit_select(off, self.peek_bits))
        # Word w + 2 is always requested, so it is on rp.data when the pointer crosses.
        # w + 2 and w + 3 are kept in registers: the address is a mux, not an adder.
        ahead2 = Signal(range(self.depth), init=2)
        ahead3 = Signal(range(self.depth), init=3)
        with m.If(self.restart):
            m.d.comb += rp.addr.eq(2)
            m.d.sync += [buf.eq(Const(start, 2 * mw)), ahead2.eq(2), ahead3.eq(3)]
        with m.Elif(self.advance & cross):
            m.d.comb += rp.addr.eq(ahead3)
            m.d.sync += [buf.eq(Cat(buf[mw:], rp.data)), ahead2.eq(ahead3), ahead3.eq(ahead3 + 1)]
        with m.Else():
            m.d.comb += rp.addr.eq(ahead2)
        return m
