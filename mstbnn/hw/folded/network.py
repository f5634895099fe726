"""The whole network as one folded, valid/ready stream component.

Same top-level port contract as the unrolled :class:`mstbnn.hw.network.NetworkEngine`
(``in_valid``/``in_ready``/``in_data`` raw inputs, value f at ``[f*input_width +: input_width]``,
one vector per beat for dense-first networks, one pixel per beat in raster
order for conv-first; ``out_valid``/``out_ready``/``out_class``/``out_scores``
with class c's signed score at ``[c*score_width +: score_width]``), so simulation and board
wrappers take either engine.

Binary layers become :class:`~mstbnn.hw.folded.stage.FoldedStage` s, each
with its own S (SIMD width) and G (gather lanes); max-pools and the final
argmax are the unrolled engine's :class:`~mstbnn.hw.layers.PoolStage` and
the folded engine's own :class:`~mstbnn.hw.folded.argmax.SequentialArgmax`
(one class per cycle: the unrolled engine's combinational argmax was the
critical path of the folded designs). As for the unrolled engine, a
:class:`FoldedEnginePlan` decides everything first (no Amaranth); the stage
components are built when the engine is elaborated.
"""

from __future__ import annotations

from mstbnn.hw.folded.argmax import SequentialArgmax
from mstbnn.hw.folded.plan import FoldedStagePlan, LayerPlan, SequentialArgmaxPlan
from mstbnn.hw.folded.stage import FoldedStage
from mstbnn.hw.layers import PoolStage
from mstbnn.hw.network import EnginePlan, StreamEngine, from_plan
from mstbnn.hw.plan import BinaryItem, PoolItem, stream_items
from mstbnn.hw.stage_plan import PoolStagePlan

__all__ = ["FoldedEnginePlan", "FoldedNetworkEngine", "plan_folded_stages", "layer_plans", "folded_stage_component"]


def _config_for(config, k: int, n: int):
    if config is None:
        return min(n, 32), 2
    if isinstance(config, dict):
        return config[k]
    if isinstance(config, (list, tuple)) and config and isinstance(config[0], (list, tuple)):
        return config[k]
    s, g = config
    return s, g


def layer_plans(net, *, reuse: bool = True, config=None) -> list[LayerPlan]:
    """One :class:`LayerPlan` per binary layer.

    ``config``: None (S = min(N, 32), G = 2), one (S, G) pair for every layer,
    or a list of pairs, one per binary layer.
    """
    plans = []
    for k, item in enumerate([it for it in stream_items(net, reuse) if isinstance(it, BinaryItem)]):
        n = item.layer.fan_in
        s, g = _config_for(config, k, n)
        plans.append(LayerPlan(item.layer.weight_matrix, item.schedule, int(s), int(g), binary=item.binary,
                               elem_bits=item.elem_bits, elem_signed=item.elem_signed))
    return plans


def plan_folded_stages(net, *, reuse: bool = True, config=None) -> list:
    """The stage plans of the folded engine, in stream order (the last one the argmax)."""
    items = stream_items(net, reuse)
    layers = iter(layer_plans(net, reuse=reuse, config=config))
    stages = []
    for item in items:
        if isinstance(item, PoolItem):
            stages.append(PoolStagePlan.of_item(item))
            continue
        stages.append(FoldedStagePlan(next(layers), front=item.front, quantizer=item.quantizer, threshold=item.threshold))
    scores = stages[-1]
    stages.append(SequentialArgmaxPlan(scores.channels, scores.score_width))
    return stages


def folded_stage_component(plan):
    """The folded engine's component for a stage plan."""
    kinds = {FoldedStagePlan: FoldedStage, PoolStagePlan: PoolStage, SequentialArgmaxPlan: SequentialArgmax}
    return kinds[type(plan)](plan)


class FoldedEnginePlan(EnginePlan):
    """The plan of the folded engine of a compiled network.

    Parameters
    ----------
    net : Network
        Compiled network (with schedules when ``reuse``).
    reuse : bool
        False: the plain baseline (every channel a root) from the same generator.
    config : see :func:`layer_plans`
        S and G per binary layer; :func:`mstbnn.hw.folded.estimate.choose_config`
        picks them for a device.

    Attributes
    ----------
    latency, initiation_interval : int
        From the exact flow model (:mod:`mstbnn.hw.folded.timing`).
    flow : dict
        :func:`mstbnn.hw.folded.timing.flow_model`: also the first images'
        input and output intervals and latencies (the first image enters an
        empty pipeline, so its interval can be shorter than the II).
    layers : list of LayerPlan
        One per binary layer.
    config : list of (S, G)
    window_cycles : list of int
        W per binary layer.
    """

    kind = "folded"

    def __init__(self, net, *, reuse: bool = True, config=None):
        stages = plan_folded_stages(net, reuse=reuse, config=config)
        self.layers = [s.layer for s in stages if isinstance(s, FoldedStagePlan)]
        self.config = [(p.simd, p.gather) for p in self.layers]
        self.window_cycles = [p.window_cycles for p in self.layers]
        super().__init__(net, reuse, stages)

    def cycle_model(self) -> tuple[int, int]:
        from mstbnn.hw.folded.timing import flow_model

        self.flow = flow_model([s.timing for s in self.stages], self.beats_per_image)
        return self.flow["latency"], self.flow["initiation_interval"]

    @property
    def storage_bits(self) -> int:
        return sum(p.storage_bits for p in self.layers)

    def resource_estimate(self, family: str = "ecp5") -> dict:
        """Estimated LUTs, carry cells, flip-flops and block RAMs for ``family``."""
        from mstbnn.hw.folded.estimate import estimate_engine

        return estimate_engine(self, family)


class FoldedNetworkEngine(StreamEngine):
    """The folded engine: ``FoldedNetworkEngine(net, reuse=..., config=...)`` plans it
    (:class:`FoldedEnginePlan`); ``FoldedNetworkEngine(plan=plan)`` builds a plan made earlier.
    """

    def __init__(self, net=None, *, plan: FoldedEnginePlan | None = None, reuse: bool = True, config=None):
        if plan is None:
            plan = FoldedEnginePlan(net, reuse=reuse, config=config)
        elif net is not None or config is not None:
            raise TypeError("FoldedNetworkEngine: give a network and a config, or a plan, not both")
        super().__init__(plan, folded_stage_component)

    config = from_plan("config")
    window_cycles = from_plan("window_cycles")
    storage_bits = from_plan("storage_bits")
    flow = from_plan("flow")
