"""What each stage of the unrolled engine will be, decided without Amaranth.

A stage plan holds every choice the generator makes for a stage before it
emits hardware: tree shapes, exact value ranges, the pipeline stage of every
channel, where corrections are computed, which leaves are fused, port widths
and the stage's cycle rule (``timing``). The resource estimate, the cycle
model and the fit check read plans; only ``elaborate`` of the components in
:mod:`mstbnn.hw.layers` turns a plan into hardware, so nothing is built that
is not used.

Value ranges are exact: a signal holding ``[lo, hi]`` gets
``Shape.cast(range(lo, hi + 1))`` (:func:`width_of` computes its width),
and every range is a proven bound of its expression, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mstbnn.compiler.ir import int_range, window_output_size
from mstbnn.compiler.schedule import Schedule

__all__ = [
    "width_of",
    "tree_latency",
    "threshold_cut",
    "class_index_width",
    "window_taps",
    "window_register_bits",
    "front_in_width",
    "DeltaParams",
    "FusedLeaf",
    "BinaryStagePlan",
    "PoolStagePlan",
    "ArgmaxStagePlan",
    "CORRECTION_MODES",
]

CORRECTION_MODES = ("auto", "early", "late", "inline")


def _bits_for(n: int, sign_bit: bool) -> int:
    # As amaranth.utils.bits_for: ceil(log2(n + 1)) bits, or ceil(log2(-n)) plus a sign bit for n <= 0.
    if n > 0:
        bits = n.bit_length()  # ceil(log2(n + 1))
    else:
        sign_bit = True
        bits = (-n - 1).bit_length() if n < 0 else 0
    return bits + 1 if sign_bit else bits


def width_of(lo: int, hi: int) -> int:
    """Bits of the smallest Amaranth shape holding every integer in [lo, hi] (``Shape.cast(range(lo, hi + 1))``)."""
    lo, hi = int(lo), int(hi)
    if lo > hi or lo == hi == 0:
        return 0
    signed = lo < 0 or hi < 0
    return max(_bits_for(lo, signed), _bits_for(hi, signed))


def tree_latency(n_terms: int, adder_levels_per_stage: int) -> int:
    """Register stages of a balanced adder tree over ``n_terms`` terms.

    A register follows every ``adder_levels_per_stage``-th adder level and the
    last one; a single term needs no adder and no register.
    """
    levels = int(np.ceil(np.log2(n_terms))) if n_terms > 1 else 0
    if levels == 0:
        return 0
    r = adder_levels_per_stage
    return len([i for i in range(1, levels + 1) if i % r == 0 or i == levels])


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


def class_index_width(n: int) -> int:
    """Bits of a class index among ``n`` classes: ceil(log2 n), at least 1."""
    return max(1, int(n - 1).bit_length())


def window_taps(kernel: int, padded_width: int) -> int:
    """Pixels a window generator's shift register holds: ``kernel - 1`` padded rows plus ``kernel``."""
    return (int(kernel) - 1) * int(padded_width) + int(kernel)


def window_register_bits(front: dict, elem_bits: int = 1) -> int:
    """Flip-flops of a window front's shift register and its ``window_valid`` (counters not included)."""
    padded_width = front["width"] + 2 * front["padding"]
    return window_taps(front["kernel"], padded_width) * front["channels"] * int(elem_bits) + 1


def front_in_width(front: dict, n: int, raw_bits: int) -> int:
    """Input payload bits of a stage: a whole vector of ``n`` values, or one pixel of ``channels`` values."""
    return (n if front["kind"] == "vector" else front["channels"]) * int(raw_bits)


@dataclass(frozen=True)
class DeltaParams:
    """A delta-update unit: ``out = base + 2 * corr + bias``, ``base = parent`` or ``offset - parent`` (negation edge).

    Binary layers work on popcounts p (y = 2p - N): :meth:`binary` sets
    ``corr = q`` (popcount of the XNOR with the child's weights over its d
    correction positions), ``bias = -d`` and ``offset = N``, so
    ``p_j = p_i + 2q - d`` (plain) or ``N - p_i + 2q - d`` (negated).
    Integer-input layers work on y directly: :meth:`integer`, with ``corr``
    the signed sum over the correction positions and no bias or offset.
    """

    parent_range: tuple
    corr_range: tuple
    out_range: tuple
    negate: bool
    offset: int
    bias: int

    @classmethod
    def binary(cls, n: int, d: int, negate: bool = False) -> "DeltaParams":
        """Popcount-domain unit for an N-input layer and a d-position correction."""
        return cls((0, int(n)), (0, int(d)), (0, int(n)), bool(negate), int(n), -int(d))

    @classmethod
    def integer(cls, parent_range, corr_range, out_range, negate: bool = False) -> "DeltaParams":
        """Sum-domain unit for an integer-input layer."""
        ints = lambda r: (int(r[0]), int(r[1]))  # noqa: E731
        return cls(ints(parent_range), ints(corr_range), ints(out_range), bool(negate), 0, 0)

    @property
    def adder_width(self) -> int:
        return width_of(*self.out_range)


@dataclass(frozen=True)
class FusedLeaf:
    """A leaf child's delta update fused with its threshold: one adder ``diff``, ``bit = diff >= 0``.

    A leaf only needs its output bit, so instead of ``v = base + 2 * corr + bias``
    and a compare of ``v`` with the cut it computes ``v - cut`` (direction +1)
    or ``cut - v`` (-1) as ``sign_p * parent + sign_c * 2 * corr + const``:
    one carry chain instead of two. ``threshold`` is in the y domain, with
    ``y = scale * v + ybias``.
    """

    delta: DeltaParams
    threshold: int
    direction: int
    scale: int = 1
    ybias: int = 0
    cut: int = field(init=False)
    constant: int | None = field(init=False)
    sign_p: int = field(init=False)
    sign_c: int = field(init=False)
    const: int = field(init=False)
    diff_range: tuple = field(init=False)

    def __post_init__(self):
        d = self.delta
        direction = 1 if int(self.direction) > 0 else -1
        cut, constant = threshold_cut(d.out_range, self.threshold, direction, self.scale, self.ybias)
        sign_p = -1 if d.negate else 1
        const = d.bias + (d.offset if d.negate else 0)
        if direction > 0:  # v - cut
            sign_p, sign_c, const = sign_p, 1, const - cut
        else:  # cut - v
            sign_p, sign_c, const = -sign_p, -1, cut - const
        (plo, phi), (clo, chi) = d.parent_range, d.corr_range
        terms = [sorted((sign_p * plo, sign_p * phi)), sorted((2 * sign_c * clo, 2 * sign_c * chi))]
        diff_range = (terms[0][0] + terms[1][0] + const, terms[0][1] + terms[1][1] + const)
        for name, value in (("direction", direction), ("cut", cut), ("constant", constant), ("sign_p", sign_p),
                            ("sign_c", sign_c), ("const", const), ("diff_range", diff_range)):
            object.__setattr__(self, name, value)

    @property
    def diff_bounds(self) -> tuple[int, int]:
        """The range of the ``diff`` signal: ``diff_range`` widened to hold 0 and -1, so its top bit is the sign."""
        return min(self.diff_range[0], -1), max(self.diff_range[1], 0)

    @property
    def adder_width(self) -> int:
        return width_of(*self.diff_bounds)


class BinaryStagePlan:
    """One binary layer (dense or conv) with its threshold, or the final score layer: the plan.

    Parameters
    ----------
    weights : ndarray of bool, shape (C, N)
        The layer's weight matrix (conv flattened channel-major, then row, column).
    schedule : Schedule
        Reuse forest; :meth:`Schedule.plain` for the baseline.
    front : dict
        ``{"kind": "vector"}``: one N-element vector per beat;
        ``{"kind": "window", "channels", "height", "width", "kernel", "stride", "padding"}``:
        a pixel stream through a window generator;
        ``{"kind": "collect", "channels", "height", "width"}``: a pixel stream
        gathered into one vector (dense after conv).
    binary : bool
        Activations are bits meaning -1/+1 (popcount domain) rather than integers.
    elem_bits, elem_signed :
        Element width and signedness of integer inputs (1, False for bits).
    quantizer : InputQuantizer or None
        First layer only: raw inputs are quantised in the front end.
    threshold : Threshold or None
        None for the score layer (its outputs are the signed sums).
    adder_levels_per_stage, tree_levels_per_stage, corrections, fuse_leaves :
        Pipelining and datapath knobs, see :mod:`mstbnn.hw.layers`.
    score_width : int or None
        Bits per output score (score layer only); the exact width by default.
    """

    def __init__(
        self,
        weights,
        schedule: Schedule,
        *,
        front: dict,
        binary: bool = True,
        elem_bits: int = 1,
        elem_signed: bool = False,
        quantizer=None,
        threshold=None,
        adder_levels_per_stage: int = 2,
        tree_levels_per_stage: int = 1,
        corrections: str = "auto",
        fuse_leaves: bool = False,
        score_width: int | None = None,
    ):
        self.weights = np.asarray(weights, dtype=bool)
        self.schedule = schedule
        self.front = dict(front)
        self.binary = bool(binary)
        self.elem_bits = int(elem_bits)
        self.elem_signed = bool(elem_signed)
        self.quantizer = quantizer
        self.threshold = threshold
        self.adder_levels_per_stage = int(adder_levels_per_stage)
        self.tree_levels_per_stage = int(tree_levels_per_stage)
        if self.adder_levels_per_stage < 1 or self.tree_levels_per_stage < 1:
            raise ValueError("adder_levels_per_stage and tree_levels_per_stage must be >= 1")
        if corrections not in CORRECTION_MODES:
            raise ValueError(f"corrections must be one of {CORRECTION_MODES}")
        c, n = self.weights.shape
        self.channels, self.n = c, n
        if schedule.n_channels != c:
            raise ValueError("schedule does not match the weight matrix")

        # Value domain: popcount p with y = 2p - N for bits, y itself for integers.
        if self.binary:
            self.scale, self.bias = 2, -n
            self.elem_range = (0, 1)
        else:
            self.scale, self.bias = 1, 0
            self.elem_range = int_range(self.elem_bits, self.elem_signed)
        self.value_range = [self._sum_range(self.weights[j], np.arange(n)) for j in range(c)]
        self.corr_range = [self._sum_range(self.weights[j], schedule.positions[j]) for j in range(c)]
        self.y_range = [(self.scale * lo + self.bias, self.scale * hi + self.bias) for lo, hi in self.value_range]

        # Pipeline stage of every channel: roots when their full tree is done,
        # a child at tree level l in stage root + (l - 1) // tree_levels_per_stage.
        self.root_stage = tree_latency(n, self.adder_levels_per_stage)
        level = schedule.level
        self.stage = np.array(
            [self.root_stage if level[j] == 0 else self.root_stage + (int(level[j]) - 1) // self.tree_levels_per_stage
             for j in range(c)],
            dtype=np.int64,
        )
        self.depth = int(self.stage.max()) + 1 if c else 1
        self.children = [j for j in schedule.order.tolist() if schedule.parent[j] >= 0]
        has_child = np.zeros(c, dtype=bool)
        has_child[schedule.parent[schedule.parent >= 0]] = True
        # Leaves whose delta update and threshold are one adder (hidden layers only).
        self.fused = {j for j in self.children if not has_child[j]} if (fuse_leaves and threshold is not None) else set()
        self.corrections = self._choose_corrections(corrections)
        self._plan_forest()

        if self.threshold is None:
            lo = min(r[0] for r in self.y_range)
            hi = max(r[1] for r in self.y_range)
            self.score_width = score_width or width_of(min(lo, -1), max(hi, 0))
            self.out_width = c * self.score_width
        else:
            self.score_width = None
            self.out_width = c
        raw = self.quantizer.bits if self.quantizer is not None else self.elem_bits
        self.in_width = front_in_width(self.front, n, raw)

    @classmethod
    def of_item(cls, item, **options) -> "BinaryStagePlan":
        """The plan of a :class:`mstbnn.hw.plan.BinaryItem` with the engine's options."""
        return cls(item.layer.weight_matrix, item.schedule, front=item.front, binary=item.binary,
                   elem_bits=item.elem_bits, elem_signed=item.elem_signed, quantizer=item.quantizer,
                   threshold=item.threshold, **options)

    @property
    def timing(self) -> dict:
        """What the cycle model needs: the front end and the pipeline depth."""
        return dict(self.front, depth=self.depth)

    # -- ranges and units -----------------------------------------------------------------

    def _sum_range(self, w_row, positions) -> tuple[int, int]:
        positions = np.asarray(positions, dtype=np.int64)
        if self.binary:
            return (0, int(len(positions)))
        xl, xh = self.elem_range
        w = w_row[positions]
        lo = int(np.where(w, xl, -xh).sum())
        hi = int(np.where(w, xh, -xl).sum())
        return lo, hi

    def delta_params(self, j: int) -> DeltaParams:
        """The delta-update unit of child j."""
        parent, neg, d = int(self.schedule.parent[j]), bool(self.schedule.negate[j]), len(self.schedule.positions[j])
        if self.binary:
            return DeltaParams.binary(self.n, d, neg)
        return DeltaParams.integer(self.value_range[parent], self.corr_range[j], self.value_range[j], neg)

    def fused_leaf(self, j: int) -> FusedLeaf:
        """The fused delta update and threshold of leaf j (``j in self.fused``)."""
        return FusedLeaf(self.delta_params(j), int(self.threshold.threshold[j]), int(self.threshold.direction[j]),
                         scale=self.scale, ybias=self.bias)

    def threshold_cut(self, j: int) -> tuple[int, int | None]:
        """(cut, constant) of channel j's threshold in its value domain (:func:`threshold_cut`)."""
        return threshold_cut(self.value_range[j], int(self.threshold.threshold[j]), int(self.threshold.direction[j]),
                             self.scale, self.bias)

    # -- corrections ----------------------------------------------------------------------

    def correction_source_stage(self, j: int, mode: str) -> int:
        """Stage whose inputs child j's correction tree reads."""
        if mode == "early":
            return 0
        if mode == "inline":
            return int(self.stage[j])
        return int(self.stage[j]) - tree_latency(len(self.schedule.positions[j]), self.adder_levels_per_stage)

    def correction_flipflops(self, mode: str) -> int:
        """Flip-flops spent carrying corrections (early) or input bits (late) to their stage."""
        total = 0
        if mode == "early":
            for j in self.children:
                d = len(self.schedule.positions[j])
                if d:
                    total += (int(self.stage[j]) - tree_latency(d, self.adder_levels_per_stage)) * width_of(*self.corr_range[j])
            return total
        need = np.zeros(self.n, dtype=np.int64)
        for j in self.children:
            pos = self.schedule.positions[j]
            if len(pos):
                need[pos] = np.maximum(need[pos], self.correction_source_stage(j, mode))
        return int(need.sum()) * self.elem_bits

    def _choose_corrections(self, mode: str) -> str:
        if mode != "auto":
            return mode
        return "late" if self.correction_flipflops("late") < self.correction_flipflops("early") else "early"

    # -- the popcount forest --------------------------------------------------------------

    def _plan_forest(self) -> None:
        """Plan every popcount tree of the layer as one forest of shared nodes.

        A node is keyed by the (position, weight bit) terms it sums, the
        stage its inputs come from and whether it is registered, so two trees
        that sum the same terms the same way share the node (and its
        register). Synthesis would merge such duplicates anyway; planning them
        once makes the flip-flop and adder counts of the estimate exact.
        """
        self.nodes: dict = {}  # key -> (lo, hi, left key, right key, registered, stage)
        self.inline_nodes: set = set()  # nodes of combinational (inline) correction trees
        self.tree_out: dict = {}  # channel -> (node key, stage) of its root tree / correction tree
        sched = self.schedule
        everything = np.arange(self.n)
        for j in sched.roots.tolist():
            self.tree_out[j] = self._plan_tree(self.weights[j], everything, 0)
        for j in self.children:
            pos = sched.positions[j]
            if len(pos):
                src = self.correction_source_stage(j, self.corrections)
                self.tree_out[j] = self._plan_tree(self.weights[j][pos], pos, src, comb=self.corrections == "inline")

    def _leaf_range(self, w: bool) -> tuple[int, int]:
        if self.binary:
            return (0, 1)
        xl, xh = self.elem_range
        return (xl, xh) if w else (-xh, -xl)

    def _plan_tree(self, w, positions, src: int, comb: bool = False):
        keys = []
        for k, bit in zip(np.asarray(positions).tolist(), np.asarray(w).tolist()):
            key = ("leaf", int(k), bool(bit), src)
            if key not in self.nodes:
                lo, hi = self._leaf_range(bool(bit))
                self.nodes[key] = (lo, hi, None, None, False, src)
            keys.append(key)
        levels = int(np.ceil(np.log2(len(keys)))) if len(keys) > 1 else 0
        stage = src
        for i in range(1, levels + 1):
            registered = not comb and (i % self.adder_levels_per_stage == 0 or i == levels)
            nxt = []
            for a in range(0, len(keys), 2):
                if a + 1 < len(keys):
                    left, right = keys[a], keys[a + 1]
                    key = ("add", left, right, registered)
                    lo = self.nodes[left][0] + self.nodes[right][0]
                    hi = self.nodes[left][1] + self.nodes[right][1]
                else:
                    left, right = keys[a], None
                    if not registered:
                        nxt.append(left)
                        continue
                    key = ("reg", left)
                    lo, hi = self.nodes[left][0], self.nodes[left][1]
                if key not in self.nodes:
                    self.nodes[key] = (lo, hi, left, right, registered, stage + (1 if registered else 0))
                if comb:
                    self.inline_nodes.add(key)
                nxt.append(key)
            keys = nxt
            if registered:
                stage += 1
        return keys[0], stage

    def forest_counts(self) -> tuple[int, list[int]]:
        """(flip-flops, adder widths) of the shared popcount forest."""
        ffs, adders = 0, []
        for key, (lo, hi, left, right, registered, _) in self.nodes.items():
            if key[0] == "leaf":
                continue
            w = width_of(lo, hi)
            if registered:
                ffs += w
            if right is not None:
                adders.append(w)
        return ffs, adders

    def forest_profile(self) -> dict:
        """Adder bits of the forest by kind, and LSB registers synthesis can merge.

        ``reg_add_bits``: adders ending in a register with a result of 5 bits
        or more (these become carry chains); ``small_add_bits``: registered
        adders of at most 4 bits (synthesis maps them to LUTs); ``comb_add_bits``: adders inside a register
        stage (synthesis fuses them into the next adder's compressor);
        ``inline_add_bits``: adders of inline correction trees.
        ``lsb_merges``: registered binary nodes whose least significant bit
        (the XOR of their terms) equals another node's: same positions, same
        parity of inverted terms, same stage; yosys merges those flip-flops.
        """
        prof = {"reg_add_bits": 0, "small_add_bits": 0, "comb_add_bits": 0, "inline_add_bits": 0, "lsb_merges": 0}
        terms: dict = {}
        seen = set()
        for key, (lo, hi, left, right, registered, stage) in self.nodes.items():
            if key[0] == "leaf":
                terms[key] = ((key[1],), 0 if key[2] else 1)
                continue
            lp, lpar = terms[left]
            if right is not None:
                rp, rpar = terms[right]
                terms[key] = (lp + rp, lpar ^ rpar)
            else:
                terms[key] = (lp, lpar)
            w = width_of(lo, hi)
            if right is not None:
                if key in self.inline_nodes:
                    prof["inline_add_bits"] += w
                elif not registered:
                    prof["comb_add_bits"] += w
                elif w >= 5:
                    prof["reg_add_bits"] += w
                else:
                    prof["small_add_bits"] += w
            if registered and self.binary:
                sig = (terms[key][0], terms[key][1], stage)
                if sig in seen:
                    prof["lsb_merges"] += 1
                seen.add(sig)
        return prof


@dataclass(frozen=True)
class PoolStagePlan:
    """Max-pool on a bit-pixel stream: window front without padding, OR per channel, one output register."""

    channels: int
    height: int
    width: int
    kernel: int
    stride: int
    depth: int = 1

    @classmethod
    def of_item(cls, item) -> "PoolStagePlan":
        return cls(*item.params())

    @property
    def front(self) -> dict:
        return {"kind": "window", "channels": self.channels, "height": self.height, "width": self.width,
                "kernel": self.kernel, "stride": self.stride, "padding": 0}

    @property
    def out_size(self) -> tuple[int, int]:
        return window_output_size(self.height, self.width, self.kernel, self.stride)

    @property
    def in_width(self) -> int:
        return self.channels

    @property
    def out_width(self) -> int:
        return self.channels

    @property
    def timing(self) -> dict:
        return dict(self.front, depth=self.depth)


@dataclass(frozen=True)
class ArgmaxStagePlan:
    """The class of the scores (lowest index on ties), by a compare tree pipelined every ``levels_per_stage`` levels.

    ``depth`` = 1 (the input register) + the registers inside the tree: one
    after every ``levels_per_stage`` levels except after the last (a single
    combinational tree was the engine's critical path, at 47-49 MHz).
    """

    classes: int
    score_width: int
    levels_per_stage: int = 2

    @property
    def tree_levels(self) -> int:
        return max(0, int(self.classes - 1).bit_length())  # ceil(log2 classes)

    @property
    def inner_registers(self) -> int:
        return max(0, -(-self.tree_levels // self.levels_per_stage) - 1)

    @property
    def depth(self) -> int:
        return 1 + self.inner_registers

    @property
    def front(self) -> dict:
        return {"kind": "vector"}

    @property
    def in_width(self) -> int:
        return self.classes * self.score_width

    @property
    def timing(self) -> dict:
        return dict(self.front, depth=self.depth)
