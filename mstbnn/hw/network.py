"""The whole network as one valid/ready stream component (the unrolled engine).

``NetworkEngine(net, reuse=True)`` chains one :class:`~mstbnn.hw.layers.BinaryStage`
per binary layer (its threshold fused in), a
:class:`~mstbnn.hw.layers.PoolStage` per max-pool and a final
:class:`~mstbnn.hw.layers.ArgmaxStage`.

Ports (Verilog names are the same; clock ``clk``, reset ``rst``):

- ``in_valid: In(1)``, ``in_ready: Out(1)``, ``in_data: In(F * W)``: raw input
  integers, value f at bits ``[f*W +: W]`` (two's complement when the input
  quantiser is signed). Dense-first: one whole input vector per beat.
  Conv-first: one pixel (its C_in channel values) per beat, row-major,
  H * W beats per image.
- ``out_valid: Out(1)``, ``out_ready: In(1)``, ``out_class``, ``out_scores``:
  class c's signed score at ``[c*S +: S]``; ``out_class`` is the argmax,
  lowest index on ties.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mstbnn.hw.components import class_index_width
from mstbnn.hw.layers import ArgmaxStage, BinaryStage, PoolStage
from mstbnn.hw.plan import PoolItem, stream_items
from mstbnn.hw.timing import cycle_model

__all__ = ["StreamEngine", "NetworkEngine", "plan_stages"]


def engine_signature(engine) -> dict:
    """The top-level ports every engine shares (Verilog names identical; see the module docstring)."""
    return {
        "in_valid": In(1),
        "in_ready": Out(1),
        "in_data": In(engine.input_values * engine.input_width),
        "out_valid": Out(1),
        "out_ready": In(1),
        "out_class": Out(engine.class_width),
        "out_scores": Out(engine.classes * engine.score_width),
    }


def plan_stages(
    net,
    *,
    reuse: bool = True,
    adder_levels_per_stage: int = 2,
    tree_levels_per_stage: int = 1,
    corrections: str = "auto",
    fuse_leaves: bool = False,
) -> list:
    """The stream stages of ``net`` (components, not yet elaborated)."""
    stages = []
    for item in stream_items(net, reuse):
        if isinstance(item, PoolItem):
            stages.append(PoolStage(*item.params()))
            continue
        stages.append(
            BinaryStage(
                item.layer.weight_matrix,
                item.schedule,
                front=item.front,
                binary=item.binary,
                elem_bits=item.elem_bits,
                elem_signed=item.elem_signed,
                quantizer=item.quantizer,
                threshold=item.threshold,
                adder_levels_per_stage=adder_levels_per_stage,
                tree_levels_per_stage=tree_levels_per_stage,
                corrections=corrections,
                fuse_leaves=fuse_leaves,
            )
        )
    scores = stages[-1]
    stages.append(ArgmaxStage(scores.channels, scores.score_width))
    for stage in stages:
        # Stages are elaborated with the engine; an engine built only for its
        # estimates or cycle model should not warn about each of them.
        stage._MustUse__silence = True
    return stages


class StreamEngine(wiring.Component):
    """What both engines share: stream stages chained by valid/ready, the input geometry, scores, class.

    Subclasses build ``stages`` (the last one the argmax, the one before it
    the score layer) and pass the cycle model of their stage timings.
    """

    def __init__(self, net, reuse: bool, stages: list, cycle_model):
        self.net = net
        self.reuse = bool(reuse)
        self.stages = stages
        quant = net.layers[0]
        self.input_width = int(quant.bits)
        self.input_signed = bool(quant.signed)
        shape = tuple(quant.shape)
        if len(shape) == 3:
            self.input_values, self.beats_per_image = shape[0], shape[1] * shape[2]
        else:
            self.input_values, self.beats_per_image = int(np.prod(shape)), 1
        scores = self.stages[-2]
        self.classes = scores.channels
        self.score_width = scores.score_width
        self.class_width = class_index_width(self.classes)
        self.latency, self.initiation_interval = cycle_model([s.timing for s in self.stages], self.beats_per_image)
        super().__init__(engine_signature(self))

    def elaborate(self, platform):
        m = Module()
        for k, stage in enumerate(self.stages):
            m.submodules[f"stage{k}"] = stage
        first, last = self.stages[0], self.stages[-1]
        # The top keeps flat port names (in_valid, in_data, out_class, ...);
        # between stages, connect checks that each payload shape is the next one's.
        m.d.comb += [
            first.i.valid.eq(self.in_valid),
            first.i.payload.eq(self.in_data),
            self.in_ready.eq(first.i.ready),
        ]
        for a, b in zip(self.stages, self.stages[1:]):
            wiring.connect(m, a.o, b.i)
        m.d.comb += [
            self.out_valid.eq(last.o.valid),
            last.o.ready.eq(self.out_ready),
            self.out_class.eq(last.o.payload.index),
            self.out_scores.eq(last.o.payload.scores),
        ]
        return m


class NetworkEngine(StreamEngine):
    """The unrolled streaming engine for a compiled network.

    Parameters
    ----------
    net : Network
        Compiled network (with schedules when ``reuse``).
    reuse : bool
        True: children reconstructed from parents per the schedule.
        False: the plain baseline, every channel a full XNOR-popcount.
    adder_levels_per_stage : int
        Adder-tree levels between pipeline registers in the popcount trees.
    tree_levels_per_stage : int
        Reuse-tree levels per pipeline stage (1: tree level = pipeline stage).
    corrections : {"auto", "early", "late"}
        Where child corrections are computed (see :mod:`mstbnn.hw.layers`).
    fuse_leaves : bool
        A leaf child's delta update and threshold as one adder (hidden layers).

    Attributes
    ----------
    input_width : int
        W, bits per raw input value.
    input_values : int
        F, values per input beat (features, or C_in for conv-first).
    beats_per_image : int
    score_width : int
        S, bits per signed class score.
    classes : int
    latency : int
        Cycles from the handshake of an image's last input beat to its
        ``out_valid``, with no stalls.
    initiation_interval : int
        Cycles between images at full throughput.
    """

    def __init__(
        self,
        net,
        *,
        reuse: bool = True,
        adder_levels_per_stage: int = 2,
        tree_levels_per_stage: int = 1,
        corrections: str = "auto",
        fuse_leaves: bool = False,
    ):
        self.options = {
            "adder_levels_per_stage": int(adder_levels_per_stage),
            "tree_levels_per_stage": int(tree_levels_per_stage),
            "corrections": corrections,
            "fuse_leaves": bool(fuse_leaves),
        }
        super().__init__(net, reuse, plan_stages(net, reuse=reuse, **self.options), cycle_model)

    @property
    def stage_depths(self) -> list[int]:
        return [s.depth for s in self.stages]

    def resource_estimate(self, family: str = "ecp5") -> dict:
        """Estimated LUTs, carry cells and flip-flops for ``family`` ("ice40" or "ecp5")."""
        from mstbnn.hw.estimate import estimate_network

        return estimate_network(self, family)
