"""The packed weight store of a scheduled binary layer: what a folded engine reads.

One layer is one bit stream. Records follow the schedule's computation order
(``schedule.order``); record r is *slot* r. Fields are written LSB first and
bit i of the stream is bit ``i % M`` of word ``i // M`` of an M-bit memory.

Per record::

    flag      1 bit                 0 = root, 1 = child
    root:     N bits                weight bit k at stream offset k (1 = +1)
    child:    parent slot           ceil(log2 C) bits (the parent's record index)
              correction length d   ceil(log2(N + 1)) bits
              negation flag         1 bit, only when the layer has a negation edge
              d entries             ceil(log2 N) + 1 bits each: the input index k
                                    (low bits), then the child's weight bit w_j[k]

The child's weight bit at each correction position is stored because a
folded engine never holds the parent's weight vector: without it, the
correction ``sum_{k in P} x_k * w_j[k]`` could not be formed from the stream.
The size equals :func:`mstbnn.compiler.cost.storage_bits` exactly.

What is *not* in the stream: the slot -> channel permutation (``order``)
and the per-channel thresholds. In hardware both are per-slot constants (the
output bits are wired in channel order, the threshold table is indexed by
slot), the same for the plain baseline and the reuse engine, so they are
left out of the storage figure of both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mstbnn.compiler.cost import clog2, storage_bits
from mstbnn.compiler.schedule import Schedule

__all__ = ["StorageLayout", "PackedLayer", "pack_layer", "unpack_layer", "to_words", "storage_edge_cost"]


@dataclass(frozen=True)
class StorageLayout:
    """Field widths of one layer's stream."""

    channels: int
    n_inputs: int
    parent_bits: int
    length_bits: int
    negate_bits: int  # 0 or 1
    index_bits: int

    @classmethod
    def of(cls, schedule: Schedule, n_inputs: int) -> "StorageLayout":
        c = schedule.n_channels
        return cls(
            channels=c,
            n_inputs=int(n_inputs),
            parent_bits=clog2(c),
            length_bits=clog2(n_inputs + 1),
            negate_bits=1 if schedule.negate.any() else 0,
            index_bits=clog2(n_inputs),
        )

    @property
    def entry_bits(self) -> int:
        """Bits per correction entry: the index and the child's weight bit."""
        return self.index_bits + 1

    @property
    def child_header_bits(self) -> int:
        """Flag, parent slot, length and negation flag of a child record."""
        return 1 + self.parent_bits + self.length_bits + self.negate_bits


@dataclass(frozen=True)
class PackedLayer:
    """A packed layer: the stream as bits plus where each record starts.

    Attributes
    ----------
    bits : ndarray of bool, shape (n_bits,)
    layout : StorageLayout
    order : ndarray of int64, shape (C,)
        Channel of each slot (the schedule's computation order).
    record_start : ndarray of int64, shape (C,)
        Stream offset of each slot's record.
    """

    bits: np.ndarray
    layout: StorageLayout
    order: np.ndarray
    record_start: np.ndarray

    @property
    def n_bits(self) -> int:
        return int(self.bits.size)


class _Writer:
    """Collects fields as (values, width) segments and emits the bits in one vectorised pass."""

    def __init__(self):
        self.segments: list[tuple[np.ndarray, int]] = []
        self.size = 0

    def fields(self, values, width: int) -> None:
        """Append each of ``values`` as a ``width``-bit field, LSB first."""
        if width == 0:
            return
        values = np.asarray(values, dtype=np.int64).ravel()
        if values.size and (values.min() < 0 or (values >> width).any()):
            raise ValueError(f"a value does not fit in {width} bits")
        self.segments.append((values, width))
        self.size += values.size * width

    def bits(self) -> np.ndarray:
        if not self.segments:
            return np.zeros(0, dtype=bool)
        return np.concatenate(
            [((v[:, None] >> np.arange(w, dtype=np.int64)) & 1).astype(bool).ravel() for v, w in self.segments]
        )


def pack_layer(weights, schedule: Schedule) -> PackedLayer:
    """Pack a layer's weights and schedule into its stream (see module docstring).

    Parameters
    ----------
    weights : array of bool, shape (C, N)
    schedule : Schedule
        :meth:`Schedule.plain` gives the baseline (every record a root).
    """
    w = np.asarray(weights, dtype=bool)
    c, n = w.shape
    if schedule.n_channels != c:
        raise ValueError(f"schedule has {schedule.n_channels} channels, weights {c}")
    lay = StorageLayout.of(schedule, n)
    order = np.asarray(schedule.order, dtype=np.int64)
    slot_of = np.empty(c, dtype=np.int64)
    slot_of[order] = np.arange(c)
    out = _Writer()
    starts = np.zeros(c, dtype=np.int64)
    for slot, j in enumerate(order.tolist()):
        starts[slot] = out.size
        p = int(schedule.parent[j])
        if p < 0:
            out.fields([0], 1)
            out.fields(w[j], 1)
            continue
        if slot_of[p] >= slot:
            raise ValueError(f"channel {j}: parent {p} is computed after it; the schedule order is broken")
        pos = np.asarray(schedule.positions[j], dtype=np.int64)
        out.fields([1], 1)
        out.fields([slot_of[p]], lay.parent_bits)
        out.fields([len(pos)], lay.length_bits)
        out.fields([int(bool(schedule.negate[j]))], lay.negate_bits)
        out.fields(pos | (w[j, pos].astype(np.int64) << lay.index_bits), lay.entry_bits)
    bits = out.bits()
    assert bits.size == storage_bits(schedule, n), "packed size disagrees with the cost model"
    return PackedLayer(bits=bits, layout=lay, order=order, record_start=starts)


def _read(bits: np.ndarray, at: int, width: int) -> int:
    if width == 0:
        return 0
    if at + width > bits.size:
        raise ValueError(f"stream ends at bit {bits.size}; a field needs bits {at}..{at + width - 1}")
    return int(np.dot(bits[at : at + width].astype(np.int64), 1 << np.arange(width, dtype=np.int64)))


def unpack_layer(packed: PackedLayer) -> tuple[np.ndarray, Schedule]:
    """Decode a stream back into (weights (C, N), Schedule): the inverse of :func:`pack_layer`.

    Child weights are rebuilt from the parent's: on a plain edge the child is
    the parent with its entries' bits written in; on a negation edge it is
    the inverted parent with its entries' bits written in.
    """
    lay, bits, order = packed.layout, packed.bits, packed.order
    c, n = lay.channels, lay.n_inputs
    w = np.zeros((c, n), dtype=bool)
    parent = np.full(c, -1, dtype=np.int64)
    negate = np.zeros(c, dtype=bool)
    at = 0
    for slot in range(c):
        j = int(order[slot])
        if _read(bits, at, 1) == 0:
            w[j] = bits[at + 1 : at + 1 + n]
            at += 1 + n
            continue
        at += 1
        p_slot = _read(bits, at, lay.parent_bits)
        at += lay.parent_bits
        d = _read(bits, at, lay.length_bits)
        at += lay.length_bits
        neg = bool(_read(bits, at, lay.negate_bits))
        at += lay.negate_bits
        if p_slot >= slot:
            raise ValueError(f"slot {slot}: parent slot {p_slot} is not computed before it")
        p = int(order[p_slot])
        row = ~w[p] if neg else w[p].copy()
        for _ in range(d):
            k = _read(bits, at, lay.index_bits)
            row[k] = bool(_read(bits, at + lay.index_bits, 1))
            at += lay.entry_bits
        w[j] = row
        parent[j], negate[j] = p, neg
    if at != bits.size:
        raise ValueError(f"stream has {bits.size - at} trailing bits")
    return w, Schedule.from_parents(w, parent, negate)


def to_words(bits: np.ndarray, width: int, extra_words: int = 0) -> list[int]:
    """The stream as ``width``-bit memory words (bit i at word i // width, bit i % width), zero padded."""
    bits = np.asarray(bits, dtype=bool)
    n_words = -(-bits.size // width) + extra_words
    padded = np.zeros(n_words * width, dtype=bool)
    padded[: bits.size] = bits
    # Little-endian bit order within each byte, then bytes to one int per word.
    rows = padded.reshape(n_words, width)
    return [int.from_bytes(np.packbits(row, bitorder="little").tobytes(), "little") for row in rows]


def storage_edge_cost(n_inputs: int, n_channels: int, negation: bool = False):
    """An ``edge_cost`` for :func:`mstbnn.compiler.mst.build_schedule` that counts stored bits.

    A child of correction size d costs its record: flag, parent slot, length,
    negation flag (when ``negation``) and d entries of ceil(log2 N) + 1 bits;
    the tree builder prices a root as ``edge_cost(N)``, which this maps to
    1 + N. A minimum forest under this cost is a minimum-storage schedule:
    a channel becomes a root whenever its cheapest correction list would be
    larger than its raw weights (d > about N / (ceil(log2 N) + 1)).
    """
    header = 1 + clog2(n_channels) + clog2(n_inputs + 1) + (1 if negation else 0)
    entry = clog2(n_inputs) + 1
    root = 1 + n_inputs

    def cost(d):
        d = np.asarray(d, dtype=np.int64)
        return np.where(d >= n_inputs, root, header + d * entry).astype(np.int64)

    return cost
