"""Folded datapath units: the SIMD XNOR-popcount and the gather unit.

Both read the layer's current window (N elements of B bits, held stable by
the front end while the window is processed) and produce one step's partial
sum **one cycle later**: a register level splits each adder tree at
:func:`~mstbnn.hw.folded.plan.tree_split_level`, so the chunk select (or the
gather multiplexers), the XNORs and the first half of the tree take one
cycle and the second half, with the accumulator, the next. A one-cycle
512-input XNOR-popcount set the folded engine's clock (docs/folded.md):

- :class:`SimdXnorPopcount`: chunk ``chunk`` of the window (elements
  ``[chunk*S, chunk*S + S)``) against S weight bits from the store;
- :class:`GatherUnit`: G elements picked by index (N:1 multiplexers) against
  the child's weight bits at those positions, lanes ``>= count`` off.

Binary activations give popcounts of XNOR (the popcount domain, y = 2p - n);
integer activations give the signed sum of +-x (weight bit 1 -> +x, 0 -> -x).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mstbnn.hw.components import shape_of
from mstbnn.hw.folded.plan import tree_split_level

__all__ = ["pipelined_sum", "SimdXnorPopcount", "GatherUnit"]


def pipelined_sum(m: Module, terms, name: str):
    """Balanced pairwise sum of Amaranth values, registered at :func:`tree_split_level`: the sum, one cycle later.

    Amaranth widens every add, so nothing is lost. The register has no
    enable: the stage behind it reads the sum only when its own valid,
    delayed alongside, says so.
    """
    terms = list(terms) or [Const(0, 1)]
    split = tree_split_level(len(terms))
    level = 0
    while True:
        if level == split:
            regs = [Signal(t.shape(), name=f"{name}_l{level}_{i}") for i, t in enumerate(terms)]
            m.d.sync += [r.eq(t) for r, t in zip(regs, terms)]
            terms = regs
        if len(terms) == 1 and level >= split:
            return terms[0]
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
        level += 1


def _term(elem, weight_bit, binary: bool, signed: bool, on):
    """One XNOR / signed-product term, zero when ``on`` is low."""
    if binary:
        return ~(elem[0] ^ weight_bit) & on
    v = elem.as_signed() if signed else elem.as_unsigned()
    return Mux(on, Mux(weight_bit, v, -v), 0)


class SimdXnorPopcount(wiring.Component):
    """S elements of the window against S weight bits per cycle.

    Parameters
    ----------
    n, simd, elem_bits, binary, elem_signed :
        Window length N, lanes S, element width B, bits vs integers, signedness.

    Ports
    -----
    window : In(N * B)
    chunk : In(range(ceil(N / S)))
    weights : In(S)
    sum : Out: popcount in [0, S] (binary) or the signed sum, of the inputs one cycle earlier.
    """

    def __init__(self, n: int, simd: int, *, elem_bits: int = 1, binary: bool = True, elem_signed: bool = False):
        self.n, self.simd, self.elem_bits = int(n), int(simd), int(elem_bits)
        self.binary, self.elem_signed = bool(binary), bool(elem_signed)
        self.chunks = -(-self.n // self.simd)
        self.sum_range = _range(self.simd, self.elem_bits, self.binary, self.elem_signed)
        super().__init__(
            {
                "window": In(self.n * self.elem_bits),
                "chunk": In(range(max(2, self.chunks))),
                "weights": In(self.simd),
                "sum": Out(shape_of(*self.sum_range)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        s, b, n = self.simd, self.elem_bits, self.n
        padded = Signal(self.chunks * s * b)
        m.d.comb += padded.eq(self.window)  # zero extended past N
        x = Signal(s * b)
        m.d.comb += x.eq(padded.word_select(self.chunk, s * b) if self.chunks > 1 else padded)
        tail = n - (self.chunks - 1) * s  # elements in the last chunk
        on = Signal(s)
        if tail == s:
            m.d.comb += on.eq(Const((1 << s) - 1, s))
        else:
            m.d.comb += on.eq(Mux(self.chunk == self.chunks - 1, (1 << tail) - 1, (1 << s) - 1))
        terms = [_term(x[i * b : (i + 1) * b], self.weights[i], self.binary, self.elem_signed, on[i]) for i in range(s)]
        m.d.comb += self.sum.eq(pipelined_sum(m, terms, "pop"))
        return m


class GatherUnit(wiring.Component):
    """G window elements fetched by index against the child's weight bits.

    Ports
    -----
    window : In(N * B)
    index : In(G * P)   (lane g's input index at ``[g*P +: P]``)
    sign : In(G)        (lane g's weight bit)
    count : In(range(G + 1))
    sum : Out: of the inputs one cycle earlier
    """

    def __init__(self, n: int, gather: int, index_bits: int, *, elem_bits: int = 1, binary: bool = True, elem_signed: bool = False):
        self.n, self.gather, self.index_bits, self.elem_bits = int(n), int(gather), int(index_bits), int(elem_bits)
        self.binary, self.elem_signed = bool(binary), bool(elem_signed)
        self.sum_range = _range(self.gather, self.elem_bits, self.binary, self.elem_signed)
        super().__init__(
            {
                "window": In(self.n * self.elem_bits),
                "index": In(self.gather * self.index_bits),
                "sign": In(self.gather),
                "count": In(range(self.gather + 1)),
                "sum": Out(shape_of(*self.sum_range)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        b, p = self.elem_bits, self.index_bits
        terms = []
        for g in range(self.gather):
            elem = Signal(b, name=f"lane{g}")
            idx = self.index[g * p : (g + 1) * p]
            m.d.comb += elem.eq(self.window.word_select(idx, b) if self.n > 1 else self.window)
            terms.append(_term(elem, self.sign[g], self.binary, self.elem_signed, self.count > g))
        m.d.comb += self.sum.eq(pipelined_sum(m, terms, "gat"))
        return m


def _range(lanes: int, elem_bits: int, binary: bool, signed: bool) -> tuple[int, int]:
    if binary:
        return 0, lanes
    top = (1 << (elem_bits - 1)) if signed else (1 << elem_bits) - 1
    return -lanes * top, lanes * top
