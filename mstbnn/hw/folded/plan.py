"""Per-layer plan of the folded engine: stream layout, widths, exact cycle counts.

Pure Python (no Amaranth), so the compiler-side choice of S and G, the cycle
model and the resource estimate can read it without building hardware.

Cycle model of one binary layer (one conv window or one dense vector)::

    cycles per window W = roots * ceil(N / S) + sum over children of max(1, ceil(d / G))

A record's header is consumed in the same cycle as its first data chunk, so
a root costs exactly ceil(N / S) cycles and a child ceil(d / G); a child with
an empty correction set (d = 0, an exact copy of its parent) still takes one
cycle to emit its output.

Fixed overheads (see :mod:`mstbnn.hw.folded.timing` for the exact rules):

- per window, +1 cycle: the core is a four-stage pipeline (walk the store,
  two datapath stages, finish), and the front end may only move to the next
  window once the datapath has read the last step of this one, so a layer
  takes W + 1 cycles per window when the next window is ready (4 when W <= 2);
- per layer, latency W + 4: front register, two datapath stages, finish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mstbnn.compiler.cost import clog2, storage_bits
from mstbnn.compiler.ir import int_range
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.storage import PackedLayer, StorageLayout, pack_layer
from mstbnn.hw.stage_plan import front_in_width, width_of

__all__ = ["LayerPlan", "FoldedStagePlan", "SequentialArgmaxPlan", "record_cycles", "window_cycles", "cycles_edge_cost",
           "STEP_FLAG_BITS", "step_entry_bits", "tree_split_level", "tree_register_widths"]

# Flags per step in the reader's step ROM (LayerPlan.step_flags): root, record's last, window's last.
STEP_FLAG_BITS = 3


def step_entry_bits(word_bits: int, flag_bits: int) -> int:
    """Width of one step-ROM entry: the offset within an M-bit word, the crossing flag, the step flags."""
    return clog2(word_bits) + 1 + flag_bits


def tree_split_level(lanes: int) -> int:
    """The adder-tree level after which the datapath's pipeline register sits (0: the terms themselves).

    The middle level of a balanced tree of ``lanes`` terms, rounded up: the
    chunk select (or gather multiplexer) and the XNORs sit before it, so the
    halves are about even (S = 512: 5 levels before, 4 and the accumulator after).
    """
    return (clog2(lanes) + 1) // 2


def tree_register_widths(lanes: int, term_width: int) -> list[int]:
    """Widths of the partial sums registered at :func:`tree_split_level`, as the tree's adds widen (by one bit each)."""
    widths = [term_width] * lanes
    for _ in range(tree_split_level(lanes)):
        widths = [max(widths[i], widths[i + 1]) + 1 if i + 1 < len(widths) else widths[i] for i in range(0, len(widths), 2)]
    return widths


def record_cycles(schedule: Schedule, n_inputs: int, simd: int, gather: int) -> np.ndarray:
    """Cycles of every slot's record, in slot (computation) order."""
    out = []
    for j in np.asarray(schedule.order).tolist():
        if schedule.parent[j] < 0:
            out.append(-(-n_inputs // simd))
        else:
            out.append(max(1, -(-len(schedule.positions[j]) // gather)))
    return np.asarray(out, dtype=np.int64)


def window_cycles(schedule: Schedule, n_inputs: int, simd: int, gather: int) -> int:
    """W: cycles per window (or dense vector) of a layer, see the module docstring."""
    return int(record_cycles(schedule, n_inputs, simd, gather).sum())


def cycles_edge_cost(n_inputs: int, simd: int, gather: int):
    """An ``edge_cost`` for :func:`mstbnn.compiler.mst.build_schedule` that counts folded cycles.

    A child of correction size d costs max(1, ceil(d / G)); the tree builder
    prices a root as ``edge_cost(N)``, which this maps to ceil(N / S).
    """
    root = -(-n_inputs // simd)

    def cost(d):
        d = np.asarray(d, dtype=np.int64)
        return np.where(d >= n_inputs, root, np.maximum(1, -(-d // gather))).astype(np.int64)

    return cost


@dataclass
class LayerPlan:
    """Everything the folded hardware of one binary layer is generated from.

    Parameters
    ----------
    weights : ndarray of bool (C, N)
    schedule : Schedule
    simd : int
        S, weight bits per root cycle.
    gather : int
        G, correction entries per child cycle.
    binary : bool
        Activations are bits (popcount domain) rather than integers.
    elem_bits, elem_signed :
        Width and signedness of integer activations (1, False for bits).
    """

    weights: np.ndarray
    schedule: Schedule
    simd: int
    gather: int
    binary: bool = True
    elem_bits: int = 1
    elem_signed: bool = False

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=bool)
        c, n = self.weights.shape
        if self.simd < 1 or self.gather < 1:
            raise ValueError("S and G must be >= 1")
        if self.schedule.n_channels != c:
            raise ValueError(f"schedule has {self.schedule.n_channels} channels, weights {c}")
        self.simd = min(int(self.simd), n)
        self.gather = int(self.gather)
        self._packed = None

    @property
    def packed(self) -> PackedLayer:
        """The packed store (built on first use: estimates need only its size)."""
        if self._packed is None:
            self._packed = pack_layer(self.weights, self.schedule)
        return self._packed

    # -- shape ----------------------------------------------------------------------------

    @property
    def channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n(self) -> int:
        return int(self.weights.shape[1])

    @property
    def layout(self) -> StorageLayout:
        return StorageLayout.of(self.schedule, self.n)

    @property
    def chunks(self) -> int:
        return -(-self.n // self.simd)

    @property
    def peek_bits(self) -> int:
        """L: stream bits the controller may consume in one cycle (header + one chunk)."""
        lay = self.layout
        return max(1 + self.simd, lay.child_header_bits + self.gather * lay.entry_bits)

    @property
    def word_bits(self) -> int:
        """M: width of the stream memory, the power of two >= L.

        At least L, so one cycle crosses at most one word; a power of two, so
        the reader's word crossing is a carry bit rather than a compare and
        subtract in its pointer loop (the engine's critical path).
        """
        return 1 << clog2(self.peek_bits)

    @property
    def stream_words(self) -> int:
        """Words of stream data (without the reader's padding words)."""
        return -(-self.storage_bits // self.word_bits)

    @property
    def storage_bits(self) -> int:
        return storage_bits(self.schedule, self.n)

    # -- value domain ---------------------------------------------------------------------

    @property
    def elem_range(self) -> tuple[int, int]:
        if self.binary:
            return 0, 1
        return int_range(self.elem_bits, self.elem_signed)

    @property
    def value_range(self) -> tuple[int, int]:
        """Range of a channel's hardware value v (popcount p for bits, y for integers)."""
        if self.binary:
            return 0, self.n
        lo, hi = self.elem_range
        m = max(abs(lo), abs(hi))
        return -self.n * m, self.n * m

    def y_of(self, v: int) -> int:
        """The channel sum y from the hardware value v."""
        return 2 * v - self.n if self.binary else v

    # -- cycles ---------------------------------------------------------------------------

    @property
    def record_cycles(self) -> np.ndarray:
        return record_cycles(self.schedule, self.n, self.simd, self.gather)

    @property
    def window_cycles(self) -> int:
        return int(self.record_cycles.sum())

    @property
    def step_consumes(self) -> np.ndarray:
        """Stream bits each step of one window consumes, in step order (they sum to the stream's length).

        Fixed at generation, so the reader's pointer for every step is a
        constant (:class:`~mstbnn.hw.folded.reader.BitReader`): a root's first
        step takes the flag and a chunk (the whole row when it is one chunk),
        later steps a chunk each, the last the remainder; a child's first step
        takes the header and up to G entries, later steps up to G entries.
        """
        lay, n, s, g = self.layout, self.n, self.simd, self.gather
        out = []
        for j in np.asarray(self.schedule.order).tolist():
            if self.schedule.parent[j] < 0:
                chunks = [min(s, n - lo) for lo in range(0, n, s)]
                chunks[0] += 1
            else:
                d = len(self.schedule.positions[j])
                chunks = [min(g, d - lo) * lay.entry_bits for lo in range(0, d, g)] or [0]
                chunks[0] += lay.child_header_bits
            out += chunks
        return np.asarray(out, dtype=np.int64)

    @property
    def step_flags(self) -> np.ndarray:
        """Per step of one window: bit 0 a root step, bit 1 the record's last step, bit 2 the window's last step.

        Fixed at generation like :attr:`step_consumes`, so the controller reads
        them (``STEP_FLAG_BITS`` bits) from the reader's step ROM instead of decoding them from the stream.
        """
        out = []
        order = np.asarray(self.schedule.order).tolist()
        for slot, (j, cycles) in enumerate(zip(order, self.record_cycles.tolist())):
            root = int(self.schedule.parent[j] < 0)
            out += [root] * (cycles - 1) + [root | 2 | (4 if slot == len(order) - 1 else 0)]
        return np.asarray(out, dtype=np.int64)

    @property
    def slot_bits(self) -> int:
        return clog2(self.channels)


class FoldedStagePlan:
    """One folded binary layer as a stream stage: its :class:`LayerPlan`, front end, quantiser, threshold.

    Parameters
    ----------
    layer : LayerPlan
    front : dict
        As for :class:`mstbnn.hw.stage_plan.BinaryStagePlan`: ``{"kind": "vector"}``,
        ``{"kind": "window", channels, height, width, kernel, stride, padding}``
        or ``{"kind": "collect", channels, height, width}``.
    quantizer : InputQuantizer or None
        First layer only: raw inputs are quantised in the front end.
    threshold : Threshold or None
        None for the score layer: its outputs are the signed sums y.
    score_width : int or None
        Width of each output score (score layer only); the exact width by default.
    """

    def __init__(self, layer: LayerPlan, *, front: dict, quantizer=None, threshold=None, score_width: int | None = None):
        self.layer = layer
        self.front = dict(front)
        self.quantizer = quantizer
        self.threshold = threshold
        self.channels = layer.channels
        self.has_children = bool((layer.schedule.parent >= 0).any())
        if threshold is None:
            lo, hi = layer.value_range
            self.score_width = score_width or width_of(min(layer.y_of(lo), -1), max(layer.y_of(hi), 0))
            self.out_width = self.channels * self.score_width
        else:
            self.score_width = None
            self.out_width = self.channels
        raw = quantizer.bits if quantizer is not None else layer.elem_bits
        self.in_width = front_in_width(self.front, layer.n, raw)

    @property
    def window_cycles(self) -> int:
        return self.layer.window_cycles

    @property
    def timing(self) -> dict:
        """What the folded flow model needs: the front end and the walk length per window."""
        return dict(self.front, walk=self.window_cycles, folded=True)


@dataclass(frozen=True)
class SequentialArgmaxPlan:
    """The folded engine's argmax: one comparator, one class per cycle (:mod:`mstbnn.hw.folded.argmax`)."""

    classes: int
    score_width: int

    @property
    def in_width(self) -> int:
        return self.classes * self.score_width

    @property
    def timing(self) -> dict:
        return {"kind": "argmax", "classes": self.classes}
