"""Bit-exact building blocks of the unrolled engine, as Amaranth components.

Each component takes its plan (:mod:`mstbnn.hw.stage_plan`: exact value
ranges, tree shapes, register counts), which estimates and cycle models read
without building it; ``elaborate`` only emits that plan.

Value ranges are exact: a signal holding values in ``[lo, hi]`` gets
``Shape.cast(range(lo, hi + 1))``, the smallest shape that holds them, and
every assignment into such a signal is lossless because ``[lo, hi]`` is a
proven bound of the expression (sum of the operands' bounds), never a guess.

Pipelined components take an ``en`` input: their registers load only while
``en`` is high, so a whole stage can be frozen by backpressure.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from mstbnn.compiler.ir import window_output_size
from mstbnn.hw.stage_plan import DeltaParams, FusedLeaf, class_index_width, threshold_cut, window_taps

__all__ = [
    "shape_of",
    "quantize",
    "DeltaUpdate",
    "DeltaThreshold",
    "ThresholdUnit",
    "WindowGenerator",
    "Collector",
    "OrPool",
    "stage_signature",
    "argmax_payload",
]


def shape_of(lo: int, hi: int) -> Shape:
    """Smallest Amaranth shape holding every integer in [lo, hi]."""
    return Shape.cast(range(int(lo), int(hi) + 1))


def quantize(raw, quantizer, front: dict, n: int, index=None):
    """The input quantiser in a stage's front end: raw integers -> activation bits (integers pass through).

    ``raw`` holds ``n`` values (a vector front) or one pixel of
    ``front["channels"]`` values; a conv front's per-position thresholds are
    a small table indexed by the pixel's raster ``index``.
    """
    q = quantizer
    if q is None or q.mode != "threshold":
        return raw
    w = q.bits
    thr = np.asarray(q.thresholds, dtype=np.int64)
    vector = front["kind"] == "vector"
    bits = []
    for f in range(n if vector else front["channels"]):
        x = raw[f * w : (f + 1) * w]
        x = x.as_signed() if q.signed else x.as_unsigned()
        if vector:
            bits.append(x >= int(thr[f]))
        else:
            t = thr[f].ravel()  # (H * W,) thresholds of channel f, raster order
            if np.all(t == t[0]):
                bits.append(x >= int(t[0]))
            else:
                table = Array([Const(int(v), shape_of(int(t.min()), int(t.max()))) for v in t])
                bits.append(x >= table[index])
    return Cat(*bits)


class DeltaUpdate(wiring.Component):
    """Reconstruct a child channel from its parent: the reuse identity in hardware.

    ``out = base + 2 * corr + bias`` with ``base = parent`` on a plain edge and
    ``base = offset - parent`` on a negation edge (:class:`~mstbnn.hw.stage_plan.DeltaParams`:
    the popcount-domain and the integer-domain forms). Combinational.

    Ports
    -----
    parent : In(shape_of(*parent_range))
    corr : In(shape_of(*corr_range))
    out : Out(shape_of(*out_range))
    """

    def __init__(self, params: DeltaParams):
        self.params = params
        super().__init__(
            {
                "parent": In(shape_of(*params.parent_range)),
                "corr": In(shape_of(*params.corr_range)),
                "out": Out(shape_of(*params.out_range)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        p = self.params
        # Fold the constants into the small correction first so the wide
        # operand goes through exactly one adder.
        if p.negate:
            m.d.comb += self.out.eq((self.corr * 2 + (p.offset + p.bias)) - self.parent)
        else:
            m.d.comb += self.out.eq(self.parent + (self.corr * 2 + p.bias))
        return m


class DeltaThreshold(wiring.Component):
    """A leaf child's delta update fused with its threshold (:class:`~mstbnn.hw.stage_plan.FusedLeaf`): one adder, its sign is the bit.

    Ports
    -----
    parent : In(shape_of(*parent_range))
    corr : In(shape_of(*corr_range))
    bit : Out(1)
    """

    def __init__(self, leaf: FusedLeaf):
        self.leaf = leaf
        super().__init__(
            {
                "parent": In(shape_of(*leaf.delta.parent_range)),
                "corr": In(shape_of(*leaf.delta.corr_range)),
                "bit": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        leaf = self.leaf
        if leaf.constant is not None:
            m.d.comb += self.bit.eq(leaf.constant)
            return m
        small = self.corr * 2 + leaf.const if leaf.sign_c > 0 else leaf.const - self.corr * 2
        expr = self.parent + small if leaf.sign_p > 0 else small - self.parent
        diff = Signal(shape_of(*leaf.diff_bounds))
        m.d.comb += [diff.eq(expr), self.bit.eq(~diff[-1])]
        return m


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
        self.depth = window_taps(k, self.padded_width)
        pix = self.channels * self.elem_bits
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
    """The argmax stages' output payload: the scores (class c at ``[c*score_width +: score_width]``) and the class index."""
    return data.StructLayout({"scores": classes * score_width, "index": class_index_width(classes)})
