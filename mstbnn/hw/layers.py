"""Stream stages: one per binary layer (with its threshold), per max-pool, plus argmax.

Every stage is a pipeline between two valid/ready streams (``i`` in, ``o`` out;
:func:`~mstbnn.hw.components.stage_signature`) with one enable::

    en = ~o.valid | o.ready        i.ready = en (& not a pad position)

All its registers load only while ``en`` is high, so backpressure freezes
the stage and nothing is lost or duplicated; bubbles travel as ``valid = 0``.

Binary stage datapath (stage numbers count registers after the front end,
stage 0 being the input register / window taps):

- roots: a full XNOR-popcount tree over N inputs, done at stage T;
- a child at tree level l is reconstructed by its delta-update unit in stage
  ``T + (l - 1) // G`` (G = ``tree_levels_per_stage``; G = 1 puts every
  tree level in its own pipeline stage), from its parent's value and its
  correction popcount q over its d differing positions;
- corrections are computed in parallel from the stage-0 input and carried as
  few-bit q values to the stage that needs them (``corrections="early"``),
  or computed late from input bits carried along (``"late"``); ``"auto"``
  takes whichever needs fewer flip-flops for the layer; ``"inline"`` carries
  the input bits to the child's own stage and computes the correction
  popcount combinationally there, feeding the delta adder directly (no
  correction registers at all; synthesis fuses the small tree and the delta
  adder into one compressor, at the price of a longer path per stage);
- each channel is thresholded where it is computed and only its output bit
  is carried to the output register (a leaf keeps no wide register at all,
  and with ``fuse_leaves`` its delta update and threshold compare are one
  adder whose sign is the bit: :class:`~mstbnn.hw.components.DeltaThreshold`);
  the score layer carries the signed scores y = 2p - N instead.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from mstbnn.compiler.ir import int_range
from mstbnn.compiler.schedule import Schedule
from mstbnn.hw.components import (
    argmax_payload,
    class_index_width,
    stage_signature,
    Collector,
    DeltaThreshold,
    DeltaUpdate,
    OrPool,
    ThresholdUnit,
    WindowGenerator,
    shape_of,
    tree_latency,
    width_of,
)

__all__ = ["Delays", "BinaryStage", "PoolStage", "ArgmaxStage", "CORRECTION_MODES"]

CORRECTION_MODES = ("auto", "early", "late", "inline")


class Delays:
    """Registers carrying values from the stage where they are made to later stages.

    Chains are shared per key: every consumer of a value at stage s reads the
    same register, so a parent's sum is registered once per stage whatever
    the number of children.
    """

    def __init__(self, m: Module, en):
        self.m, self.en = m, en
        self._chains: dict = {}
        self.register_bits = 0

    def put(self, key, value, stage: int) -> None:
        self._chains[key] = {stage: value}

    def at(self, key, stage: int):
        chain = self._chains[key]
        have = max((s for s in chain if s <= stage), default=None)
        if have is None:
            raise ValueError(f"{key} is needed at stage {stage} before it exists")
        value = chain[have]
        for s in range(have + 1, stage + 1):
            reg = Signal(value.shape(), name=f"{'_'.join(map(str, key))}_s{s}", reset_less=True)
            with self.m.If(self.en):
                self.m.d.sync += reg.eq(value)
            self.register_bits += reg.shape().width
            chain[s] = value = reg
        return value


class BinaryStage(wiring.Component):
    """One binary layer (dense or conv) with its threshold, or the final score layer.

    Parameters
    ----------
    weights : ndarray of bool, shape (C, N)
        The layer's weight matrix (conv flattened channel-major, then row, column).
    schedule : Schedule
        Reuse forest; :meth:`Schedule.plain` for the baseline.
    front : dict
        ``{"kind": "vector"}``: one N-element vector per beat;
        ``{"kind": "window", "channels", "height", "width", "kernel", "stride", "padding"}``:
        a pixel stream through a :class:`WindowGenerator`;
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
        Pipelining and datapath knobs, see the module docstring.
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
        self.r = int(adder_levels_per_stage)
        self.g = int(tree_levels_per_stage)
        if self.r < 1 or self.g < 1:
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

        # Stages.
        self.root_stage = tree_latency(n, self.r)
        level = schedule.level
        self.stage = np.array(
            [self.root_stage if level[j] == 0 else self.root_stage + (int(level[j]) - 1) // self.g for j in range(c)],
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
            self.score_width = score_width or shape_of(min(lo, -1), max(hi, 0)).width
            out_width = c * self.score_width
        else:
            self.score_width = None
            out_width = c
        super().__init__(stage_signature(self._in_width(), out_width))

    # -- planning -------------------------------------------------------------------------

    def _sum_range(self, w_row, positions) -> tuple[int, int]:
        positions = np.asarray(positions, dtype=np.int64)
        if self.binary:
            return (0, int(len(positions)))
        xl, xh = self.elem_range
        w = w_row[positions]
        lo = int(np.where(w, xl, -xh).sum())
        hi = int(np.where(w, xh, -xl).sum())
        return lo, hi

    def correction_source_stage(self, j: int, mode: str) -> int:
        """Stage whose inputs child j's correction tree reads."""
        if mode == "early":
            return 0
        if mode == "inline":
            return int(self.stage[j])
        return int(self.stage[j]) - tree_latency(len(self.schedule.positions[j]), self.r)

    def correction_flipflops(self, mode: str) -> int:
        """Flip-flops spent carrying corrections (early) or input bits (late) to their stage."""
        total = 0
        if mode == "early":
            for j in self.children:
                d = len(self.schedule.positions[j])
                if d:
                    total += (int(self.stage[j]) - tree_latency(d, self.r)) * width_of(*self.corr_range[j])
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

    def delta_unit(self, j: int) -> DeltaUpdate:
        """The delta-update unit of child j (planned, not yet elaborated)."""
        parent, neg, d = int(self.schedule.parent[j]), bool(self.schedule.negate[j]), len(self.schedule.positions[j])
        if self.binary:
            du = DeltaUpdate.binary(self.n, d, neg)
        else:
            du = DeltaUpdate.integer(self.value_range[parent], self.corr_range[j], self.value_range[j], neg)
        du._MustUse__silence = True  # a fused leaf only borrows its parameters
        return du

    def fused_unit(self, j: int, du: DeltaUpdate | None = None) -> DeltaThreshold:
        du = du or self.delta_unit(j)
        return DeltaThreshold(du, int(self.threshold.threshold[j]), int(self.threshold.direction[j]),
                              scale=self.scale, ybias=self.bias)

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
            registered = not comb and (i % self.r == 0 or i == levels)
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

    def _in_width(self) -> int:
        kind = self.front["kind"]
        raw = self.quantizer.bits if self.quantizer is not None else self.elem_bits
        if kind == "vector":
            return self.n * raw
        return self.front["channels"] * raw

    @property
    def timing(self) -> dict:
        """What the cycle model needs: the front end and the pipeline depth."""
        return dict(self.front, depth=self.depth)

    # -- hardware -------------------------------------------------------------------------

    def _quantize(self, m: Module, raw, index=None):
        """Raw input integers -> activation elements (bits, or integers passed through)."""
        q = self.quantizer
        if q is None or q.mode != "threshold":
            return raw
        w = q.bits
        thr = np.asarray(q.thresholds, dtype=np.int64)
        kind = self.front["kind"]
        count = self.n if kind == "vector" else self.front["channels"]
        bits = []
        for f in range(count):
            x = raw[f * w : (f + 1) * w]
            x = x.as_signed() if q.signed else x.as_unsigned()
            if kind == "vector":
                bits.append(x >= int(thr[f]))
            else:
                t = thr[f].ravel()  # (H * W,) thresholds of channel f, raster order
                if np.all(t == t[0]):
                    bits.append(x >= int(t[0]))
                else:
                    shape = shape_of(int(t.min()), int(t.max()))
                    table = Array([Const(int(v), shape) for v in t])
                    bits.append(x >= table[index])
        return Cat(*bits)

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        b = self.elem_bits
        kind = self.front["kind"]
        if kind == "vector":
            x0 = Signal(self.n * b, name="x0", reset_less=True)
            valid0 = Signal(name="valid0")
            with m.If(en):
                m.d.sync += [x0.eq(self._quantize(m, self.i.payload)), valid0.eq(self.i.valid)]
            m.d.comb += self.i.ready.eq(en)
        elif kind == "window":
            f = self.front
            m.submodules.window = wg = WindowGenerator(
                f["channels"], f["height"], f["width"], f["kernel"], f["stride"], f["padding"], elem_bits=b
            )
            m.d.comb += [
                wg.en.eq(en),
                wg.in_valid.eq(self.i.valid),
                self.i.ready.eq(wg.in_ready),
                wg.in_data.eq(self._quantize(m, self.i.payload, wg.in_index)),
            ]
            x0, valid0 = wg.window, wg.window_valid
        else:
            f = self.front
            m.submodules.collect = col = Collector(f["channels"], f["height"], f["width"], elem_bits=b)
            m.d.comb += [col.en.eq(en), col.in_valid.eq(self.i.valid), self.i.ready.eq(col.in_ready)]
            m.d.comb += col.in_data.eq(self.i.payload)
            x0, valid0 = col.out, col.out_valid

        # Data registers carry no reset: only the valid bits need one, and a reset
        # on every flip-flop makes rst a net of thousands of loads that nextpnr
        # routes through the fabric (it promotes only clocks to global nets).
        delays = Delays(m, en)
        for k in range(self.n):
            delays.put(("x", k), x0[k * b : (k + 1) * b], 0)

        signals = {}
        for key, (lo, hi, left, right, registered, stage) in self.nodes.items():
            if key[0] == "leaf":
                _, k, bit, src = key
                x = delays.at(("x", k), src)
                if self.binary:
                    signals[key] = x if bit else ~x
                else:
                    x = x.as_signed() if self.elem_signed else x.as_unsigned()
                    signals[key] = x if bit else -x
                continue
            expr = signals[left] + signals[right] if right is not None else signals[left]
            sig = Signal(shape_of(lo, hi), name=f"n{len(signals)}", reset_less=True)
            if registered:
                with m.If(en):
                    m.d.sync += sig.eq(expr)
            else:
                m.d.comb += sig.eq(expr)
            signals[key] = sig

        sched = self.schedule
        for j in sched.roots.tolist():
            key, stage = self.tree_out[j]
            delays.put(("v", j), signals[key], stage)
        for j in self.children:
            pos = sched.positions[j]
            stage = int(self.stage[j])
            if len(pos):
                key, ready = self.tree_out[j]
                delays.put(("q", j), signals[key], ready)
                corr = delays.at(("q", j), stage)
            else:
                corr = Const(0, 1)
            parent = int(sched.parent[j])
            du = self.delta_unit(j)
            if j in self.fused:
                fu = self.fused_unit(j, du)
                m.submodules[f"leaf{j}"] = fu
                m.d.comb += [fu.parent.eq(delays.at(("v", parent), stage)), fu.corr.eq(corr)]
                delays.put(("b", j), fu.bit, stage)
                continue
            m.submodules[f"delta{j}"] = du
            m.d.comb += [du.parent.eq(delays.at(("v", parent), stage)), du.corr.eq(corr)]
            delays.put(("v", j), du.out, stage)

        outs = []
        for j in range(self.channels):
            if j in self.fused:
                outs.append(delays.at(("b", j), self.depth))
                continue
            v = delays.at(("v", j), int(self.stage[j]))
            if self.threshold is not None:
                th = ThresholdUnit(
                    self.value_range[j],
                    int(self.threshold.threshold[j]),
                    int(self.threshold.direction[j]),
                    scale=self.scale,
                    bias=self.bias,
                )
                m.submodules[f"thr{j}"] = th
                m.d.comb += th.value.eq(v)
                delays.put(("b", j), th.bit, int(self.stage[j]))
                outs.append(delays.at(("b", j), self.depth))
            else:
                y = Signal(signed(self.score_width), name=f"y{j}")
                m.d.comb += y.eq(v * self.scale + self.bias)
                delays.put(("y", j), y, int(self.stage[j]))
                outs.append(delays.at(("y", j), self.depth))
        m.d.comb += self.o.payload.eq(Cat(*outs))

        valid = valid0
        for s in range(1, self.depth + 1):
            reg = Signal(name=f"valid{s}")
            with m.If(en):
                m.d.sync += reg.eq(valid)
            valid = reg
        m.d.comb += self.o.valid.eq(valid)
        # Registers this elaboration created outside the front end (checked against the estimate).
        self.elaborated_flipflops = delays.register_bits + self.forest_counts()[0] + self.depth
        return m


class PoolStage(wiring.Component):
    """Max-pool on a bit-pixel stream: window generator, OR per channel, output register."""

    def __init__(self, channels: int, height: int, width: int, kernel: int, stride: int):
        self.front = {
            "kind": "window",
            "channels": int(channels),
            "height": int(height),
            "width": int(width),
            "kernel": int(kernel),
            "stride": int(stride),
            "padding": 0,
        }
        self.depth = 1
        super().__init__(stage_signature(int(channels), int(channels)))

    @property
    def timing(self) -> dict:
        return dict(self.front, depth=self.depth)

    def elaborate(self, platform):
        m = Module()
        f = self.front
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        m.submodules.window = wg = WindowGenerator(f["channels"], f["height"], f["width"], f["kernel"], f["stride"], 0)
        m.submodules.pool = pool = OrPool(f["channels"], f["kernel"])
        m.d.comb += [
            wg.en.eq(en),
            wg.in_valid.eq(self.i.valid),
            wg.in_data.eq(self.i.payload),
            self.i.ready.eq(wg.in_ready),
            pool.window.eq(wg.window),
        ]
        with m.If(en):
            m.d.sync += [self.o.payload.eq(pool.out), self.o.valid.eq(wg.window_valid)]
        return m


class ArgmaxStage(wiring.Component):
    """Registers the scores, picks the class (lowest index on ties), registers both.

    The comparison tree is pipelined: a register after every
    ``levels_per_stage`` compare levels, with the scores carried alongside, so
    the argmax of many classes is not the engine's critical path (it was, at
    47-49 MHz, with one combinational tree). ``depth`` = 1 + the number of
    inner register levels.
    """

    def __init__(self, classes: int, score_width: int, levels_per_stage: int = 2):
        self.classes, self.score_width = int(classes), int(score_width)
        self.levels_per_stage = int(levels_per_stage)
        self.tree_levels = max(0, int(self.classes - 1).bit_length())  # ceil(log2 classes)
        # Registers inside the tree: after every levels_per_stage levels, except after the last.
        self.inner_registers = max(0, -(-self.tree_levels // self.levels_per_stage) - 1)
        self.depth = 1 + self.inner_registers
        self.front = {"kind": "vector"}
        super().__init__(stage_signature(self.classes * self.score_width, argmax_payload(self.classes, self.score_width)))

    @property
    def timing(self) -> dict:
        return dict(self.front, depth=self.depth)

    def elaborate(self, platform):
        m = Module()
        s = self.score_width
        idx_w = class_index_width(self.classes)
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(en)
        scores = Signal(self.classes * s, reset_less=True)
        valid = Signal()
        with m.If(en):
            m.d.sync += [scores.eq(self.i.payload), valid.eq(self.i.valid)]
        nodes = [(Const(i, idx_w), scores[i * s : (i + 1) * s].as_signed()) for i in range(self.classes)]
        level = 0
        while len(nodes) > 1:
            nxt = []
            for i in range(0, len(nodes), 2):
                if i + 1 == len(nodes):
                    nxt.append(nodes[i])
                    continue
                (ia, va), (ib, vb) = nodes[i], nodes[i + 1]
                take_b = vb > va  # strictly greater moves right: ties keep the lower index
                idx = Signal(idx_w, name=f"idx{level}_{i // 2}")
                val = Signal(signed(s), name=f"val{level}_{i // 2}")
                m.d.comb += [idx.eq(Mux(take_b, ib, ia)), val.eq(Mux(take_b, vb, va))]
                nxt.append((idx, val))
            nodes = nxt
            level += 1
            if len(nodes) > 1 and level % self.levels_per_stage == 0:
                regs = []
                for k, (idx, val) in enumerate(nodes):
                    ri = Signal(idx_w, name=f"idx{level}_{k}_q", reset_less=True)
                    rv = Signal(signed(s), name=f"val{level}_{k}_q", reset_less=True)
                    with m.If(en):
                        m.d.sync += [ri.eq(idx), rv.eq(val)]
                    regs.append((ri, rv))
                nodes = regs
                scores_q, valid_q = Signal.like(scores, name=f"scores{level}_q", reset_less=True), Signal(name=f"valid{level}_q")
                with m.If(en):
                    m.d.sync += [scores_q.eq(scores), valid_q.eq(valid)]
                scores, valid = scores_q, valid_q
        with m.If(en):
            m.d.sync += [self.o.payload.scores.eq(scores), self.o.payload.index.eq(nodes[0][0]), self.o.valid.eq(valid)]
        return m
