"""Sequential reader of a packed bit stream held in a synchronous-read memory.

The stream is the layer's packed store (:mod:`mstbnn.compiler.storage`) as
M-bit words, read as a fixed sequence of steps that repeats every window:
step k consumes a number of bits fixed at generation (at most L <= M, so a
step crosses at most one word boundary). The reader shows the L bits at
step k's pointer on ``peek``; ``advance`` moves on to step k + 1, and past
the window's last step it wraps to step 0 by itself. How each step's
consumption is known:

- *step table* (``consumes``, layers with children,
  :attr:`~mstbnn.hw.folded.plan.LayerPlan.step_consumes`): each step's bit
  offset, whether it crosses into the next word, and the user's per-step
  flags come from a small step ROM indexed by the step number (read one step
  ahead into a register). That takes the pointer out of the loop pointer ->
  funnel shifter -> header decode -> bits consumed -> pointer;
- *repeated record* (``record_consumes``, ``records``, plain layers): every
  record's steps consume the same (flag + chunk, chunks, the tail chunk), so
  two counters give the consumption and no ROM is needed.

The reader runs **one step ahead**: its pointer, its 2M-bit buffer of words
w and w + 1 and the word w + 2 in flight on the memory's read port describe
step k + 1, and ``peek`` is a register loaded from the funnel shifter when
the consumer advances. So the 2M-to-L funnel shifter has a cycle of its own
(it set the folded engine's clock once the datapath was pipelined,
docs/folded.md), and nothing the consumer does in a cycle passes through it.
The memory address is driven from the *next* word index (w + 2, or w + 3
when the step crosses), so the word needed at a crossing is on the read port
whatever the previous cycle did. Wrapping costs no bubble: words 0 and 1 are
constants (the store is a ROM), and word 2 is requested in the same cycle.
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
    """Stream reader over a ROM of ``word_bits``-wide words, one step ahead of its consumer.

    Parameters
    ----------
    bits : array of bool
        The stream.
    word_bits : int
        M, the memory width.
    peek_bits : int
        L, bits shown on ``peek`` (L <= M).
    consumes : sequence of int, optional
        Step table: the bits each step of a window consumes (0..L), steps 0, 1, ...
    flags : sequence of int, optional
        With ``consumes``: per step, ``flag_bits`` bits of the user's own (e.g. the step's kind), shown on ``flags``.
    flag_bits : int
    record_consumes : sequence of int, optional
        Instead of ``consumes``: the bits of each step of one record, ``[first] + [middle] * k + [last]``
        (or one value), the same for each of ``records`` records.
    records : int

    Ports
    -----
    advance : In(1)
        Move on to the next step (from the window's last step: to step 0).
    peek : Out(L)
        Stream bits [p, p + L) at the current step's pointer p (a register).
    primed : Out(1)
        Low only in the first cycle after reset (the read ports are not loaded yet); no ``advance`` then.
    flags : Out(flag_bits)
        With ``consumes``: the current step's flags (a register, like ``peek``).
    """

    def __init__(self, bits, word_bits: int, peek_bits: int, consumes=None, flags=None, flag_bits: int = 0, *,
                 record_consumes=None, records: int = 1):
        if peek_bits > word_bits:
            raise ValueError("peek_bits must not exceed word_bits")
        if (consumes is None) == (record_consumes is None):
            raise ValueError("give either consumes (a step table) or record_consumes (a repeated record)")
        self.word_bits, self.peek_bits = int(word_bits), int(peek_bits)
        self.words = to_words(bits, self.word_bits, extra_words=PAD_WORDS)
        self.depth = len(self.words)
        self.stepped = consumes is not None
        if self.stepped:
            window = [int(t) for t in consumes] or [0]
            self.flag_bits = int(flag_bits)
            self.flags_init = [int(f) for f in flags] if flags is not None else [0] * len(window)
            if len(self.flags_init) != len(window) or any(not 0 <= f < (1 << self.flag_bits) for f in self.flags_init):
                raise ValueError(f"flags: one value in 0..{(1 << self.flag_bits) - 1} per step")
        else:
            self.record_consumes = [int(t) for t in record_consumes]
            rc = self.record_consumes
            if not rc or any(t != rc[1] for t in rc[1:-1]):
                raise ValueError("record_consumes: [first] + [middle] * k + [last]")
            self.records = int(records)
            window = rc * self.records
            self.flag_bits = 0
        if any(t > self.peek_bits for t in window):
            raise ValueError("a step consumes more than peek_bits")
        self.steps = step_table(window, self.word_bits)
        ports = {"advance": In(1), "peek": Out(self.peek_bits), "primed": Out(1)}
        if self.flag_bits:
            ports["flags"] = Out(self.flag_bits)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        mw, lw = self.word_bits, self.peek_bits
        n_steps = len(self.steps)
        m.submodules.rom = rom = Memory(shape=mw, depth=self.depth, init=self.words)
        rp = rom.read_port()
        ob = max(1, (mw - 1).bit_length())  # bits of an offset in 0..M-1
        start = (self.words[1] << mw) | self.words[0]

        # The ahead state (step k + 1 while the consumer is at step k), reset to step 1's.
        ahead = 1 % n_steps
        w1 = 1 if (n_steps > 1 and self.steps[0][1]) else 0  # step 0 starts at bit 0: it crosses into word 1 or not
        buf = Signal(2 * mw, init=(self.words[w1 + 1] << mw) | self.words[w1])
        ahead2 = Signal(range(self.depth), init=w1 + 2)
        ahead3 = Signal(range(self.depth), init=w1 + 3)
        primed = Signal()
        m.d.sync += primed.eq(1)
        m.d.comb += self.primed.eq(primed)
        wrap = Signal()  # the ahead step is the window's last: it moves to step 0

        if self.stepped:
            # The step ROM runs one step further ahead: ``cur`` (a register) holds the ahead
            # step's offset, crossing flag and flags, the ROM's read port the one after.
            entries = [off | (int(cross) << ob) | (f << (ob + 1)) for (off, cross), f in zip(self.steps, self.flags_init)]
            width = step_entry_bits(mw, self.flag_bits)
            m.submodules.step_rom = step_rom = Memory(shape=width, depth=n_steps, init=entries)
            sp = step_rom.read_port()
            cur = Signal(width, init=entries[ahead])
            step = Signal(range(max(2, n_steps)), init=ahead)
            next1, next2 = Signal.like(step), Signal.like(step)
            m.d.comb += [next1.eq(Mux(step == n_steps - 1, 0, step + 1)), next2.eq(Mux(next1 == n_steps - 1, 0, next1 + 1)),
                         wrap.eq(step == n_steps - 1)]
            off, cross = cur[:ob], cur[ob]
            with m.If(self.advance & wrap):
                m.d.comb += sp.addr.eq(1 % n_steps)
                m.d.sync += [step.eq(0), cur.eq(entries[0])]
            with m.Elif(self.advance):
                m.d.comb += sp.addr.eq(next2)
                m.d.sync += [step.eq(next1), cur.eq(sp.data)]
            with m.Else():
                m.d.comb += sp.addr.eq(next1)
            if self.flag_bits:
                flags = Signal(self.flag_bits, init=self.flags_init[0])
                with m.If(self.advance):
                    m.d.sync += flags.eq(cur[ob + 1 :])
                m.d.comb += self.flags.eq(flags)
        else:
            # A repeated record: counters of the ahead step's place in its record and of records.
            rc, records = self.record_consumes, self.records
            per = len(rc)
            chunk = Signal(range(max(2, per)), init=ahead % per)
            record = Signal(range(max(2, records)), init=ahead // per)
            take = Signal(range(lw + 1))
            m.d.comb += [take.eq(Mux(chunk == 0, rc[0], Mux(chunk == per - 1, rc[-1], rc[min(1, per - 1)]))),
                         wrap.eq((chunk == per - 1) & (record == records - 1))]
            off = Signal(range(mw), init=self.steps[ahead][0])
            total = Signal(range(2 * mw + 1))
            m.d.comb += total.eq(off + take)
            pow2 = mw & (mw - 1) == 0
            cross = total[(mw - 1).bit_length()] if pow2 and mw > 1 else total >= mw
            with m.If(self.advance & wrap):
                m.d.sync += [off.eq(0), chunk.eq(0), record.eq(0)]
            with m.Elif(self.advance):
                m.d.sync += off.eq(total[: (mw - 1).bit_length()] if pow2 and mw > 1 else Mux(cross, total - mw, total))
                with m.If(chunk == per - 1):
                    m.d.sync += [chunk.eq(0), record.eq(record + 1)]
                with m.Else():
                    m.d.sync += chunk.eq(chunk + 1)

        peek = Signal(lw, init=start & ((1 << lw) - 1))  # step 0's bits
        with m.If(self.advance):
            m.d.sync += peek.eq(buf.bit_select(off, lw))
        m.d.comb += self.peek.eq(peek)
        # Word w + 2 is always requested, so it is on rp.data when the pointer crosses.
        # w + 2 and w + 3 are kept in registers: the address is a mux, not an adder.
        with m.If(self.advance & wrap):
            m.d.comb += rp.addr.eq(2)
            m.d.sync += [buf.eq(Const(start, 2 * mw)), ahead2.eq(2), ahead3.eq(3)]
        with m.Elif(self.advance & cross):
            m.d.comb += rp.addr.eq(ahead3)
            m.d.sync += [buf.eq(Cat(buf[mw:], rp.data)), ahead2.eq(ahead3), ahead3.eq(ahead3 + 1)]
        with m.Else():
            m.d.comb += rp.addr.eq(ahead2)
        return m
