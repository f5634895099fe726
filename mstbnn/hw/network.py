"""The whole network as one valid/ready stream component (the unrolled engine).

``NetworkEngine(net, reuse=True)`` chains one :class:`~mstbnn.hw.layers.BinaryStage`
per binary layer (its threshold fused in), a
:class:`~mstbnn.hw.layers.PoolStage` per max-pool and a final
:class:`~mstbnn.hw.layers.ArgmaxStage`. What it will be is decided first,
without Amaranth, by its :class:`UnrolledEnginePlan` (one
:mod:`~mstbnn.hw.stage_plan` per stage, the cycle model, the resource
estimate); the stage components are built only when the engine is elaborated.

Ports (Verilog names are the same; clock ``clk``, reset ``rst``):

- ``in_valid: In(1)``, ``in_ready: Out(1)``, ``in_data: In(input_values * input_width)``: raw input
  integers, value f at bits ``[f*input_width +: input_width]`` (two's complement when the input
  quantiser is signed). Dense-first: one whole input vector per beat.
  Conv-first: one pixel (its C_in channel values) per beat, row-major,
  H * W beats per image.
- ``out_valid: Out(1)``, ``out_ready: In(1)``, ``out_class``, ``out_scores``:
  class c's signed score at ``[c*score_width +: score_width]``; ``out_class`` is the argmax,
  lowest index on ties.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from mstbnn.hw.layers import stage_component
from mstbnn.hw.plan import PoolItem, stream_items
from mstbnn.hw.stage_plan import ArgmaxStagePlan, BinaryStagePlan, PoolStagePlan, class_index_width
from mstbnn.hw.timing import cycle_model

__all__ = ["EnginePlan", "UnrolledEnginePlan", "StreamEngine", "NetworkEngine", "plan_stages"]


def engine_signature(plan) -> dict:
    """The top-level ports every engine shares (Verilog names identical; see the module docstring)."""
    return {
        "in_valid": In(1),
        "in_ready": Out(1),
        "in_data": In(plan.input_values * plan.input_width),
        "out_valid": Out(1),
        "out_ready": In(1),
        "out_class": Out(plan.class_width),
        "out_scores": Out(plan.classes * plan.score_width),
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
    """The stage plans of ``net``'s unrolled engine, in stream order (the last one the argmax)."""
    options = dict(adder_levels_per_stage=adder_levels_per_stage, tree_levels_per_stage=tree_levels_per_stage,
                   corrections=corrections, fuse_leaves=fuse_leaves)
    stages = [PoolStagePlan.of_item(item) if isinstance(item, PoolItem) else BinaryStagePlan.of_item(item, **options)
              for item in stream_items(net, reuse)]
    scores = stages[-1]
    stages.append(ArgmaxStagePlan(scores.channels, scores.score_width))
    return stages


class EnginePlan:
    """What both engines' plans share: the stage plans, the input geometry, scores, class, the cycle model.

    Subclasses plan ``stages`` (the last one the argmax, the one before it
    the score layer) and give the cycle model of their stage timings
    (:meth:`cycle_model`).

    Attributes
    ----------
    input_width : int
        Bits per raw input value.
    input_values : int
        Values per input beat (features, or C_in for conv-first).
    beats_per_image : int
    score_width : int
        Bits per signed class score.
    classes : int
    latency : int
        Cycles from the handshake of an image's last input beat to its
        ``out_valid``, with no stalls.
    initiation_interval : int
        Cycles between images at full throughput.
    """

    kind = ""

    def __init__(self, net, reuse: bool, stages: list):
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
        self.latency, self.initiation_interval = self.cycle_model()

    def cycle_model(self) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def stage_depths(self) -> list[int]:
        return [s.depth for s in self.stages]


class UnrolledEnginePlan(EnginePlan):
    """The plan of the unrolled streaming engine for a compiled network.

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
    corrections : {"auto", "early", "late", "inline"}
        Where child corrections are computed (see :mod:`mstbnn.hw.layers`).
    fuse_leaves : bool
        A leaf child's delta update and threshold as one adder (hidden layers).
    """

    kind = "unrolled"

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
        super().__init__(net, reuse, plan_stages(net, reuse=reuse, **self.options))

    def cycle_model(self) -> tuple[int, int]:
        return cycle_model([s.timing for s in self.stages], self.beats_per_image)

    def resource_estimate(self, family: str = "ecp5") -> dict:
        """Estimated LUTs, carry cells and flip-flops for ``family`` ("ice40" or "ecp5")."""
        from mstbnn.hw.estimate import estimate_network

        return estimate_network(self, family)


def from_plan(name: str) -> property:
    """An engine attribute that is its plan's."""
    return property(lambda self: getattr(self.plan, name), doc=f"The plan's ``{name}``.")


class StreamEngine(wiring.Component):
    """What both engines share in hardware: their plan's stages, built and chained by valid/ready.

    ``build_stage`` turns one stage plan into its component; it is called
    only when the engine is elaborated.
    """

    net = from_plan("net")
    reuse = from_plan("reuse")
    stages = from_plan("stages")
    input_width = from_plan("input_width")
    input_signed = from_plan("input_signed")
    input_values = from_plan("input_values")
    beats_per_image = from_plan("beats_per_image")
    classes = from_plan("classes")
    score_width = from_plan("score_width")
    class_width = from_plan("class_width")
    latency = from_plan("latency")
    initiation_interval = from_plan("initiation_interval")
    stage_depths = from_plan("stage_depths")

    def __init__(self, plan: EnginePlan, build_stage):
        self.plan = plan
        self._build_stage = build_stage
        super().__init__(engine_signature(plan))

    def resource_estimate(self, family: str = "ecp5") -> dict:
        return self.plan.resource_estimate(family)

    def elaborate(self, platform):
        m = Module()
        stages = [self._build_stage(plan) for plan in self.plan.stages]
        for k, stage in enumerate(stages):
            m.submodules[f"stage{k}"] = stage
        first, last = stages[0], stages[-1]
        # The top keeps flat port names (in_valid, in_data, out_class, ...);
        # between stages, connect checks that each payload shape is the next one's.
        m.d.comb += [
            first.i.valid.eq(self.in_valid),
            first.i.payload.eq(self.in_data),
            self.in_ready.eq(first.i.ready),
        ]
        for a, b in zip(stages, stages[1:]):
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

    ``NetworkEngine(net, reuse=..., **options)`` plans it
    (:class:`UnrolledEnginePlan`, whose parameters it takes);
    ``NetworkEngine(plan=plan)`` builds a plan made earlier.
    """

    def __init__(self, net=None, *, plan: UnrolledEnginePlan | None = None, reuse: bool = True, **options):
        if plan is None:
            plan = UnrolledEnginePlan(net, reuse=reuse, **options)
        elif net is not None or options:
            raise TypeError("NetworkEngine: give a network and options, or a plan, not both")
        super().__init__(plan, stage_component)

    @property
    def options(self) -> dict:
        return self.plan.options
