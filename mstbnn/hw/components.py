"""Bit-exact building blocks of the unrolled engine, as Amaranth components.

Every component plans its structure (tree shape, exact value ranges, register
count) in ``__init__`` so estimates and cycle models can read it without
elaborating; ``elaborate`` only emits that plan.

Value ranges are exact: a signal holding values in ``[lo, hi]`` gets
``Shape.cast(range(lo, hi + 1))``, the smallest shape that holds them, and
every assignment into such a signal is lossless because ``[lo, hi]`` is a
proven bound of the expression (sum of the operands' bounds), never a guess.

Pipelined components take an ``en`` input: their registers load only while
``en`` is high, so a whole stage can be frozen by backpressure.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from mstbnn.compiler.ir import window_output_size

__all__ = [
    "shape_of",
    "width_of",
    "XnorPopcount",
    "DeltaUpdate",
    "DeltaThreshold",
    "ThresholdUnit",
    "WindowGenerator",
    "Collector",
    "OrPool",
    "class_index_width",
    "stage_signature",
    "argmax_payload",
    "tree_latency",
    "threshold_cut",
]


def shape_of(lo: int, hi: int) -> Shape:
    """Smallest Amaranth shape holding every integer in [lo, hi]."""
    return Shape.cast(range(int(lo), int(hi) + 1))


def width_of(lo: int, hi: int) -> int:
    """Bit width of :func:`shape_of`."""
    return shape_of(lo, hi).width


def _adder_levels(n_terms: int) -> int:
    return int(np.ceil(np.log2(n_terms))) if n_terms > 1 else 0


def tree_latency(n_terms: int, adder_levels_per_stage: int) -> int:
    """Register stages of a balanced adder tree over ``n_terms`` terms.

    A register follows every ``adder_levels_per_stage``-th adder level and the
    last one; a single term needs no adder and no register.
    """
    levels = _adder_levels(n_terms)
    if levels == 0:
        return 0
    r = adder_levels_per_stage
    return len([i for i in range(1, levels + 1) if i % r == 0 or i == levels])


class XnorPopcount(wiring.Component):
    """Pipelined sum of ``x_k * w_k`` over constant weights: an XNOR-popcount tree.

    For binary activations (``binary=True``, 1-bit inputs) the output is
    ``popcount(XNOR(x, w))``: a weight bit 1 keeps the input bit (a wire),
    0 inverts it. For integer inputs (``binary=False``) the weight is a sign
    (1 -> +x, 0 -> -x) and the output is the signed sum.

    Parameters
    ----------
    weights : array of bool, shape (n,)
    binary : bool
        1-bit activations meaning -1/+1 (popcount form) versus integers.
    input_bits : int
        Bits per input element (1 for binary activations).
    input_signed : bool
        Multi-bit inputs are two's complement when True.
    adder_levels_per_stage : int
        A register after every this many adder levels (and after the last).

    Attributes
    ----------
    latency : int
        Clock cycles (with ``en`` high) from ``x`` to ``sum``.
    sum_range : (int, int)
        Exact range of the output.
    register_bits : int
        Flip-flops in the tree.
    adders : list of int
        Width of every two-input adder (for the resource estimate).

    Ports
    -----
    en : In(1)
        Register load enable.
    x : In(n * input_bits)
        Element k at bits ``[k*input_bits +: input_bits]``.
    sum : Out(shape_of(*sum_range))
    """

    def __init__(
        self,
        weights,
        *,
        binary: bool = True,
        input_bits: int = 1,
        input_signed: bool = False,
        adder_levels_per_stage: int = 2,
    ):
        self.weights = np.asarray(weights, dtype=bool).ravel()
        self.binary = bool(binary)
        if self.binary and input_bits != 1:
            raise ValueError("binary XNOR-popcount takes 1-bit inputs")
        if self.weights.size == 0:
            raise ValueError("XnorPopcount needs at least one term")
        if adder_levels_per_stage < 1:
            raise ValueError("adder_levels_per_stage must be >= 1")
        self.input_bits = int(input_bits)
        self.input_signed = bool(input_signed)
        self.adder_levels_per_stage = int(adder_levels_per_stage)
        if self.binary:
            leaves = [(0, 1)] * self.weights.size
        else:
            if self.input_signed:
                xl, xh = -(1 << (self.input_bits - 1)), (1 << (self.input_bits - 1)) - 1
            else:
                xl, xh = 0, (1 << self.input_bits) - 1
            leaves = [(xl, xh) if w else (-xh, -xl) for w in self.weights]
        levels = [leaves]
        while len(levels[-1]) > 1:
            prev = levels[-1]
            nxt = []
            for i in range(0, len(prev), 2):
                if i + 1 < len(prev):
                    nxt.append((prev[i][0] + prev[i + 1][0], prev[i][1] + prev[i + 1][1]))
                else:
                    nxt.append(prev[i])
            levels.append(nxt)
        self._levels = levels
        n_levels = len(levels) - 1
        r = self.adder_levels_per_stage
        self._registered = {i for i in range(1, n_levels + 1) if i % r == 0 or i == n_levels}
        self.latency = len(self._registered)
        self.register_bits = sum(width_of(*rng) for i in self._registered for rng in levels[i])
        self.adders = [width_of(*levels[i][j // 2]) for i in range(1, n_levels + 1) for j in range(0, len(levels[i - 1]) - 1, 2)]
        self.sum_range = levels[-1][0]
        super().__init__(
            {
                "en": In(1),
                "x": In(self.weights.size * self.input_bits),
                "sum": Out(shape_of(*self.sum_range)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        b = self.input_bits
        nodes = []
        for k, w in enumerate(self.weights):
            if self.binary:
                bit = self.x[k]
                nodes.append(bit if w else ~bit)
            else:
                v = self.x[k * b : (k + 1) * b]
                v = v.as_signed() if self.input_signed else v.as_unsigned()
                nodes.append(v if w else -v)
        for i in range(1, len(self._levels)):
            nxt = []
            for j, rng in enumerate(self._levels[i]):
                a = 2 * j
                expr = nodes[a] + nodes[a + 1] if a + 1 < len(nodes) else nodes[a]
                sig = Signal(shape_of(*rng), name=f"l{i}_{j}")
                if i in self._registered:
                    with m.If(self.en):
                        m.d.sync += sig.eq(expr)
                else:
                    m.d.comb += sig.eq(expr)
                nxt.append(sig)
            nodes = nxt
        m.d.comb += self.sum.eq(nodes[0])
        return m


class DeltaUpdate(wiring.Component):
    """Reconstruct a child channel from its parent: the reuse identity in hardware.

    ``out = base + 2 * corr + bias`` with ``base = parent`` on a plain edge and
    ``base = offset - parent`` on a negation edge. Combinational.

    Binary layers work on popcounts p (y = 2p - N): use :meth:`binary`, which
    sets ``corr = q`` (popcount over the correction positions of XNOR with
    the child's weights), ``bias = -d`` and ``offset = N``, so
    ``p_j = p_i + 2q - d`` (plain) or ``N - p_i + 2q - d`` (negated).
    Integer-input layers work on y directly: :meth:`integer`, with ``corr``
    the signed sum over the correction positions, ``bias = 0``, ``offset = 0``.

    Ports
    -----
    parent : In(shape_of(*parent_range))
    corr : In(shape_of(*corr_range))
    out : Out(shape_of(*out_range))
    """

    def __init__(self, parent_range, corr_range, out_range, *, negate: bool, offset: int, bias: int):
        self.parent_range = tuple(int(v) for v in parent_range)
        self.corr_range = tuple(int(v) for v in corr_range)
        self.out_range = tuple(int(v) for v in out_range)
        self.negate = bool(negate)
        self.offset = int(offset)
        self.bias = int(bias)
        super().__init__(
            {
                "parent": In(shape_of(*self.parent_range)),
                "corr": In(shape_of(*self.corr_range)),
                "out": Out(shape_of(*self.out_range)),
            }
        )

    @classmethod
    def binary(cls, n: int, d: int, negate: bool = False) -> "DeltaUpdate":
        """Popcount-domain unit for an N-input layer and a d-position correction."""
        return cls((0, n), (0, d), (0, n), negate=negate, offset=n, bias=-d)

    @classmethod
    def integer(cls, parent_range, corr_range, out_range, negate: bool = False) -> "DeltaUpdate":
        """Sum-domain unit for an integer-input layer."""
        return cls(parent_range, corr_range, out_range, negate=negate, offset=0, bias=0)

    @property
    def adder_width(self) -> int:
        return width_of(*self.out_range)

    def elaborate(self, platform):
        m = Module()
        # Fold the constants into the small correction first so the wide
        # operand goes through exactly one adder.
        if self.negate:
            m.d.comb += self.out.eq((self.corr * 2 + (self.offset + self.bias)) - self.parent)
        else:
            m.d.comb += self.out.eq(self.parent + (self.corr * 2 + self.bias))
        return m


class DeltaThreshold(wiring.Component):
    """A leaf child's delta update fused with its threshold: one adder, its sign is the bit.

    A leaf only needs its output bit, so instead of computing
    ``v = base + 2 * corr + bias`` and then comparing ``v`` with the cut,
    it computes ``v - cut`` (direction +1) or ``cut - v`` (direction -1) in
    one adder and takes the complement of the sign: one carry chain instead
    of two. Same parameters as :class:`DeltaUpdate` plus the threshold (in
    the y domain, with ``y = scale * v + ybias``).

    Ports
    -----
    parent : In(shape_of(*parent_range))
    corr : In(shape_of(*corr_range))
    bit : Out(1)
    """

    def __init__(self, delta: "DeltaUpdate", threshold: int, direction: int, *, scale: int = 1, ybias: int = 0):
        self.delta = delta
        delta._MustUse__silence = True  # only its parameters are used
        self.direction = 1 if int(direction) > 0 else -1
        self.cut, self.constant = threshold_cut(delta.out_range, threshold, self.direction, scale, ybias)
        # diff = sign_p * parent + sign_c * 2 * corr + const, with bit = diff >= 0.
        sign_p = -1 if delta.negate else 1
        const = delta.bias + (delta.offset if delta.negate else 0)
        if self.direction > 0:  # v - cut
            self.sign_p, self.sign_c, self.const = sign_p, 1, const - self.cut
        else:  # cut - v
            self.sign_p, self.sign_c, self.const = -sign_p, -1, self.cut - const
        plo, phi = delta.parent_range
        clo, chi = delta.corr_range
        terms = [sorted((self.sign_p * plo, self.sign_p * phi)), sorted((2 * self.sign_c * clo, 2 * self.sign_c * chi))]
        self.diff_range = (terms[0][0] + terms[1][0] + self.const, terms[0][1] + terms[1][1] + self.const)
        super().__init__(
            {
                "parent": In(shape_of(*delta.parent_range)),
                "corr": In(shape_of(*delta.corr_range)),
                "bit": Out(1),
            }
        )

    @property
    def adder_width(self) -> int:
        return shape_of(min(self.diff_range[0], -1), max(self.diff_range[1], 0)).width

    def elaborate(self, platform):
        m = Module()
        if self.constant is not None:
            m.d.comb += self.bit.eq(self.constant)
            return m
        small = self.corr * 2 + self.const if self.sign_c > 0 else self.const - self.corr * 2
        expr = self.parent + small if self.sign_p > 0 else small - self.parent
        diff = Signal(shape_of(min(self.diff_range[0], -1), max(self.diff_range[1], 0)))
        m.d.comb += [diff.eq(expr), self.bit.eq(~diff[-1])]
        return m


def threshold_cut(value_range, threshold: int, direction: int, scale: int, bias: int):
    """Move ``y >= t`` / ``y <= t`` (y = scale * v + bias) into v's domain.

    Returns (cut, constant): the hardware compares ``v >= cut`` (direction
    +1) or ``v <= cut`` (-1); ``constant`` is 0 or 1 when the outcome is the
    same for every v in ``value_range``, else None.
    """
    lo, hi = value_range
    num = int(threshold) - int(bias)
    if direction > 0:
        cut = -((-num) // scale)  # v >= ceil((t - b) / a)
        constant = 1 if cut <= lo else 0 if cut > hi else None
    else:
        cut = num // scale  # v <= floor((t - b) / a)
        constant = 1 if cut >= hi else 0 if cut < lo else None
    return cut, constant


class ThresholdUnit(wiring.Component):
    """Integer compare with direction: ``bit = y >= t`` (direction +1) or ``y <= t`` (-1).

    The input is the hardware value v with ``y = scale * v + bias``
    (scale > 0); the threshold is moved into v's domain at generation time,
    so the hardware is a single compare against a constant. A threshold
    outside v's range gives a constant bit (``constant`` is then 0 or 1).

    Ports
    -----
    value : In(shape_of(*value_range))
    bit : Out(1)
    """

    def __init__(self, value_range, threshold: int, direction: int, *, scale: int = 1, bias: int = 0):
        self.value_range = tuple(int(v) for v in value_range)
        self.threshold = int(threshold)
        self.direction = 1 if int(direction) > 0 else -1
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale, self.bias = int(scale), int(bias)
        self.cut, self.constant = threshold_cut(self.value_range, self.threshold, self.direction, self.scale, self.bias)
        super().__init__({"value": In(shape_of(*self.value_range)), "bit": Out(1)})

    def elaborate(self, platform):
        m = Module()
        if self.constant is not None:
            m.d.comb += self.bit.eq(self.constant)
        elif self.direction > 0:
            m.d.comb += self.bit.eq(self.value >= self.cut)
        else:
            m.d.comb += self.bit.eq(self.value <= self.cut)
        return m


def _mask(bits) -> Const:
    """A constant whose bit i is bits[i]: indexed by a counter, it is a tiny ROM."""
    value = 0
    for i, b in enumerate(bits):
        if b:
            value |= 1 << i
    return Const(value, max(1, len(bits)))


class WindowGenerator(wiring.Component):
    """Conv/pool windows from a raster pixel stream: padder plus line buffers.

    Pixels of one image arrive row-major; the generator walks the padded
    raster ((H + 2p) x (W + 2p)) one position per accepted pixel, inserting
    pad pixels (value 0: bit 0 means -1 for binary activations, integer 0 for
    a multi-bit input) without consuming input. A shift register of
    ``(k - 1) * (W + 2p) + k`` pixels holds the last rows; when the newest
    pixel ends a window (stride ``s``), ``window_valid`` rises for one
    enabled cycle with the window on ``window``.

    Element ``c * k * k + r * k + col`` (channel-major, then kernel row, then
    column: the flattening of conv weights) sits at bits ``[e*B +: B]``.

    Ports
    -----
    en : In(1)
        Stage enable (the stage's output can move). Nothing changes while low.
    in_valid, in_ready, in_data :
        Input pixel stream (``C * B`` bits, channel c at ``[c*B +: B]``).
        ``in_ready`` is low on pad positions.
    in_index : Out(range(H * W))
        Raster index of the interior pixel the generator would accept now
        (for position-dependent input quantisation).
    window_valid : Out(1)
        Registered: the shift of the previous enabled cycle completed a window.
    window : Out(k * k * C * B)
    """

    def __init__(self, channels: int, height: int, width: int, kernel: int, stride: int = 1, padding: int = 0, elem_bits: int = 1):
        self.channels, self.height, self.width = int(channels), int(height), int(width)
        self.kernel, self.stride, self.padding, self.elem_bits = int(kernel), int(stride), int(padding), int(elem_bits)
        p, k, s = self.padding, self.kernel, self.stride
        self.padded_height, self.padded_width = self.height + 2 * p, self.width + 2 * p
        if k > self.padded_height or k > self.padded_width:
            raise ValueError("kernel larger than the padded image")
        self.out_height, self.out_width = window_output_size(self.height, self.width, k, s, p)
        self.depth = (k - 1) * self.padded_width + k
        pix = self.channels * self.elem_bits
        self.register_bits = self.depth * pix + 1
        super().__init__(
            {
                "en": In(1),
                "in_valid": In(1),
                "in_ready": Out(1),
                "in_data": In(pix),
                "in_index": Out(range(max(2, self.height * self.width))),
                "window_valid": Out(1),
                "window": Out(k * k * pix),
            }
        )

    def window_rows(self):
        """Padded raster rows on which a window ends."""
        k, s = self.kernel, self.stride
        return [y >= k - 1 and (y - k + 1) % s == 0 and (y - k + 1) // s < self.out_height for y in range(self.padded_height)]

    def window_cols(self):
        k, s = self.kernel, self.stride
        return [x >= k - 1 and (x - k + 1) % s == 0 and (x - k + 1) // s < self.out_width for x in range(self.padded_width)]

    def pad_rows(self):
        p = self.padding
        return [y < p or y >= self.height + p for y in range(self.padded_height)]

    def pad_cols(self):
        p = self.padding
        return [x < p or x >= self.width + p for x in range(self.padded_width)]

    def elaborate(self, platform):
        m = Module()
        hp, wp, k, c, b = self.padded_height, self.padded_width, self.kernel, self.channels, self.elem_bits
        pix = c * b
        row = Signal(range(max(2, hp)))
        col = Signal(range(max(2, wp)))
        index = Signal(range(max(2, self.height * self.width)))
        is_pad = Signal()
        if self.padding:
            m.d.comb += is_pad.eq(_mask(self.pad_rows()).bit_select(row, 1) | _mask(self.pad_cols()).bit_select(col, 1))
        ends = Signal()
        m.d.comb += ends.eq(_mask(self.window_rows()).bit_select(row, 1) & _mask(self.window_cols()).bit_select(col, 1))
        src_valid = Signal()
        pixel = Signal(pix)
        m.d.comb += [
            src_valid.eq(is_pad | self.in_valid),
            pixel.eq(Mux(is_pad, 0, self.in_data)),
            self.in_ready.eq(self.en & ~is_pad),
            self.in_index.eq(index),
        ]
        taps = [Signal(pix, name=f"sr{i}") for i in range(self.depth)]
        with m.If(self.en):
            m.d.sync += self.window_valid.eq(src_valid & ends)
            with m.If(src_valid):
                m.d.sync += taps[0].eq(pixel)
                m.d.sync += [taps[i].eq(taps[i - 1]) for i in range(1, self.depth)]
                with m.If(col == wp - 1):
                    m.d.sync += col.eq(0)
                    m.d.sync += row.eq(Mux(row == hp - 1, 0, row + 1))
                with m.Else():
                    m.d.sync += col.eq(col + 1)
                with m.If(~is_pad):
                    m.d.sync += index.eq(Mux(index == self.height * self.width - 1, 0, index + 1))
        elems = []
        for ch in range(c):
            for r in range(k):
                for cc in range(k):
                    back = (k - 1 - r) * wp + (k - 1 - cc)
                    elems.append(taps[back][ch * b : (ch + 1) * b])
        m.d.comb += self.window.eq(Cat(*elems))
        return m


class Collector(wiring.Component):
    """Gather a whole (C, H, W) image from a pixel stream into one flat vector.

    The flattening is C-major (element ``c * H * W + y * W + x``), as a dense
    layer after a conv expects. ``out_valid`` (registered) rises for one
    enabled cycle after the image's last pixel.

    Ports
    -----
    en : In(1)
    in_valid, in_ready, in_data : pixel stream, ``C * B`` bits.
    out_valid : Out(1)
    out : Out(C * H * W * B)
    """

    def __init__(self, channels: int, height: int, width: int, elem_bits: int = 1):
        self.channels, self.height, self.width, self.elem_bits = int(channels), int(height), int(width), int(elem_bits)
        self.pixels = self.height * self.width
        self.register_bits = self.pixels * self.channels * self.elem_bits + 1
        super().__init__(
            {
                "en": In(1),
                "in_valid": In(1),
                "in_ready": Out(1),
                "in_data": In(self.channels * self.elem_bits),
                "out_valid": Out(1),
                "out": Out(self.pixels * self.channels * self.elem_bits),
            }
        )

    def elaborate(self, platform):
        m = Module()
        n, c, b = self.pixels, self.channels, self.elem_bits
        taps = [Signal(c * b, name=f"px{i}") for i in range(n)]
        count = Signal(range(max(2, n)))
        m.d.comb += self.in_ready.eq(self.en)
        with m.If(self.en):
            m.d.sync += self.out_valid.eq(self.in_valid & (count == n - 1))
            with m.If(self.in_valid):
                m.d.sync += taps[0].eq(self.in_data)
                m.d.sync += [taps[i].eq(taps[i - 1]) for i in range(1, n)]
                m.d.sync += count.eq(Mux(count == n - 1, 0, count + 1))
        # After the last shift, raster pixel `pos` sits in taps[n - 1 - pos].
        elems = [taps[n - 1 - pos][ch * b : (ch + 1) * b] for ch in range(c) for pos in range(n)]
        m.d.comb += self.out.eq(Cat(*elems))
        return m


class OrPool(wiring.Component):
    """Max-pool on bits: each channel's output is the OR over its k x k window.

    Ports
    -----
    window : In(C * k * k)  (layout of :class:`WindowGenerator`, 1-bit elements)
    out : Out(C)
    """

    def __init__(self, channels: int, kernel: int):
        self.channels, self.kernel = int(channels), int(kernel)
        super().__init__({"window": In(self.channels * self.kernel**2), "out": Out(self.channels)})

    def elaborate(self, platform):
        m = Module()
        kk = self.kernel**2
        for ch in range(self.channels):
            m.d.comb += self.out[ch].eq(self.window[ch * kk : (ch + 1) * kk].any())
        return m


def stage_signature(in_width: int, out_width) -> dict:
    """The ports of every engine stage (unrolled and folded): stream ``i`` in, stream ``o`` out.

    Stages are joined with ``wiring.connect``, which checks that one stage's
    payload shape is the next one's.
    """
    return {"i": In(stream.Signature(in_width)), "o": Out(stream.Signature(out_width))}


def argmax_payload(classes: int, score_width: int) -> data.StructLayout:
    """The argmax stages' output payload: the scores (class c at ``[c*S +: S]``) and the class index."""
    return data.StructLayout({"scores": classes * score_width, "index": class_index_width(classes)})


def class_index_width(n: int) -> int:
    """Bits of a class index among ``n`` classes: ceil(log2 n), at least 1."""
    return max(1, int(n - 1).bit_length())
