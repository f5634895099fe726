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
  ``T + (l - 1) // TL`` (TL = ``tree_levels_per_stage``; TL = 1 puts every
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

Every choice above is made by the stage's plan (:mod:`mstbnn.hw.stage_plan`);
the components here only emit it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from mstbnn.hw.components import (
    argmax_payload,
    stage_signature,
    Collector,
    DeltaThreshold,
    DeltaUpdate,
    OrPool,
    ThresholdUnit,
    WindowGenerator,
    quantize,
    shape_of,
)
from mstbnn.hw.stage_plan import ArgmaxStagePlan, BinaryStagePlan, PoolStagePlan, class_index_width

__all__ = ["Delays", "BinaryStage", "PoolStage", "ArgmaxStage", "stage_component"]


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

    Emits its :class:`~mstbnn.hw.stage_plan.BinaryStagePlan`.
    """

    def __init__(self, plan: BinaryStagePlan):
        self.plan = plan
        super().__init__(stage_signature(plan.in_width, plan.out_width))

    def elaborate(self, platform):
        p = self.plan
        m = Module()
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        b = p.elem_bits
        kind = p.front["kind"]
        if kind == "vector":
            x0 = Signal(p.n * b, name="x0", reset_less=True)
            valid0 = Signal(name="valid0")
            with m.If(en):
                m.d.sync += [x0.eq(quantize(self.i.payload, p.quantizer, p.front, p.n)), valid0.eq(self.i.valid)]
            m.d.comb += self.i.ready.eq(en)
        elif kind == "window":
            f = p.front
            m.submodules.window = wg = WindowGenerator(
                f["channels"], f["height"], f["width"], f["kernel"], f["stride"], f["padding"], elem_bits=b
            )
            m.d.comb += [
                wg.en.eq(en),
                wg.in_valid.eq(self.i.valid),
                self.i.ready.eq(wg.in_ready),
                wg.in_data.eq(quantize(self.i.payload, p.quantizer, p.front, p.n, wg.in_index)),
            ]
            x0, valid0 = wg.window, wg.window_valid
        else:
            f = p.front
            m.submodules.collect = col = Collector(f["channels"], f["height"], f["width"], elem_bits=b)
            m.d.comb += [col.en.eq(en), col.in_valid.eq(self.i.valid), self.i.ready.eq(col.in_ready)]
            m.d.comb += col.in_data.eq(self.i.payload)
            x0, valid0 = col.out, col.out_valid

        # Data registers carry no reset: only the valid bits need one, and a reset
        # on every flip-flop makes rst a net of thousands of loads that nextpnr
        # routes through the fabric (it promotes only clocks to global nets).
        delays = Delays(m, en)
        for k in range(p.n):
            delays.put(("x", k), x0[k * b : (k + 1) * b], 0)

        signals = {}
        for key, (lo, hi, left, right, registered, stage) in p.nodes.items():
            if key[0] == "leaf":
                _, k, bit, src = key
                x = delays.at(("x", k), src)
                if p.binary:
                    signals[key] = x if bit else ~x
                else:
                    x = x.as_signed() if p.elem_signed else x.as_unsigned()
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

        sched = p.schedule
        for j in sched.roots.tolist():
            key, stage = p.tree_out[j]
            delays.put(("v", j), signals[key], stage)
        for j in p.children:
            pos = sched.positions[j]
            stage = int(p.stage[j])
            if len(pos):
                key, ready = p.tree_out[j]
                delays.put(("q", j), signals[key], ready)
                corr = delays.at(("q", j), stage)
            else:
                corr = Const(0, 1)
            parent = int(sched.parent[j])
            if j in p.fused:
                m.submodules[f"leaf{j}"] = fu = DeltaThreshold(p.fused_leaf(j))
                m.d.comb += [fu.parent.eq(delays.at(("v", parent), stage)), fu.corr.eq(corr)]
                delays.put(("b", j), fu.bit, stage)
                continue
            m.submodules[f"delta{j}"] = du = DeltaUpdate(p.delta_params(j))
            m.d.comb += [du.parent.eq(delays.at(("v", parent), stage)), du.corr.eq(corr)]
            delays.put(("v", j), du.out, stage)

        outs = []
        for j in range(p.channels):
            if j in p.fused:
                outs.append(delays.at(("b", j), p.depth))
                continue
            v = delays.at(("v", j), int(p.stage[j]))
            if p.threshold is not None:
                th = ThresholdUnit(
                    p.value_range[j],
                    int(p.threshold.threshold[j]),
                    int(p.threshold.direction[j]),
                    scale=p.scale,
                    bias=p.bias,
                )
                m.submodules[f"thr{j}"] = th
                m.d.comb += th.value.eq(v)
                delays.put(("b", j), th.bit, int(p.stage[j]))
                outs.append(delays.at(("b", j), p.depth))
            else:
                y = Signal(signed(p.score_width), name=f"y{j}")
                m.d.comb += y.eq(v * p.scale + p.bias)
                delays.put(("y", j), y, int(p.stage[j]))
                outs.append(delays.at(("y", j), p.depth))
        m.d.comb += self.o.payload.eq(Cat(*outs))

        valid = valid0
        for s in range(1, p.depth + 1):
            reg = Signal(name=f"valid{s}")
            with m.If(en):
                m.d.sync += reg.eq(valid)
            valid = reg
        m.d.comb += self.o.valid.eq(valid)
        # Registers this elaboration created outside the front end (checked against the estimate).
        self.elaborated_flipflops = delays.register_bits + p.forest_counts()[0] + p.depth
        return m


class PoolStage(wiring.Component):
    """Max-pool on a bit-pixel stream: window generator, OR per channel, output register."""

    def __init__(self, plan: PoolStagePlan):
        self.plan = plan
        super().__init__(stage_signature(plan.in_width, plan.out_width))

    def elaborate(self, platform):
        m = Module()
        p = self.plan
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        m.submodules.window = wg = WindowGenerator(p.channels, p.height, p.width, p.kernel, p.stride, 0)
        m.submodules.pool = pool = OrPool(p.channels, p.kernel)
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

    The compare tree is pipelined as its :class:`~mstbnn.hw.stage_plan.ArgmaxStagePlan` says,
    with the scores carried alongside.
    """

    def __init__(self, plan: ArgmaxStagePlan):
        self.plan = plan
        super().__init__(stage_signature(plan.in_width, argmax_payload(plan.classes, plan.score_width)))

    def elaborate(self, platform):
        m = Module()
        classes, s, levels_per_stage = self.plan.classes, self.plan.score_width, self.plan.levels_per_stage
        idx_w = class_index_width(classes)
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(en)
        scores = Signal(classes * s, reset_less=True)
        valid = Signal()
        with m.If(en):
            m.d.sync += [scores.eq(self.i.payload), valid.eq(self.i.valid)]
        nodes = [(Const(i, idx_w), scores[i * s : (i + 1) * s].as_signed()) for i in range(classes)]
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
            if len(nodes) > 1 and level % levels_per_stage == 0:
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


def stage_component(plan):
    """The unrolled engine's component for a stage plan."""
    kinds = {BinaryStagePlan: BinaryStage, PoolStagePlan: PoolStage, ArgmaxStagePlan: ArgmaxStage}
    return kinds[type(plan)](plan)
