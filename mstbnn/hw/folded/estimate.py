"""Resource estimate of the folded engine and the per-layer choice of S and G.

The estimate is a sum of per-part formulas whose LUT coefficients were
calibrated on single components with yosys 0.70 ``synth_ecp5 -nowidelut
-noabc9`` (see ``docs/folded.md``, "Calibration"):

- a k:1 multiplexer of one bit: ``MUX_LUT * (k - 1)`` LUT4s (0.9);
- a popcount of b XNOR terms: ``POPCOUNT_LUT * b`` LUT4s (2.7);
- the stream reader's funnel shifter: ``SHIFT_LUT`` x L outputs x ceil(log2 M) levels (2.0);
- register and memory bits are counted exactly from the plan.

Block RAM: every layer's stream ROM is one M-bit-wide memory of
``ceil(bits / M) + 5`` words, mapped to DP16KD (18 kbit; 512 x 36 ... 16k x 1)
in the cheapest aspect ratio; memories under ``BRAM_MIN_BITS`` are assumed
to go to LUT RAM / logic instead, except stream ROMs of more than
``ROM_LUT_WORDS`` words, which yosys also puts in block RAM. The sums memory
(C x value width) and the threshold table (C entries) likewise; on iCE40,
which has no LUT RAM, a sums memory of ``ICE40_SUMS_EBR_CHANNELS`` words or
more goes to an EBR.

iCE40 LUTs are the same formulas (4-kbit EBRs for the memories); whole
engines against yosys, both families: ``benchmarks/bench_estimate.py``.
"""

from __future__ import annotations

import math

from mstbnn.compiler.cost import clog2
from mstbnn.hw.folded.plan import (STEP_FLAG_BITS, FoldedStagePlan, LayerPlan, cycles_edge_cost, step_entry_bits,
                                  tree_register_widths, window_cycles)
from mstbnn.hw.folded.reader import PAD_WORDS
from mstbnn.hw.folded.timing import window_busy_cycles
from mstbnn.hw.plan import PoolItem, stream_items
from mstbnn.hw.stage_plan import width_of, window_register_bits

__all__ = [
    "MUX_LUT",
    "POPCOUNT_LUT",
    "SHIFT_LUT",
    "bram_blocks",
    "estimate_layer",
    "estimate_engine",
    "estimate_network",
    "choose_config",
    "SIMD_CHOICES",
    "GATHER_CHOICES",
]

MUX_LUT = 0.9
POPCOUNT_LUT = 2.7
SHIFT_LUT = 2.0
BRAM_MIN_BITS = 4096
ROM_LUT_WORDS = 64
ICE40_SUMS_EBR_CHANNELS = 16
# Each is capped at the layer's fan-in N, so 1024 means S = N (one cycle per root) on SFC / LFC-sized layers.
SIMD_CHOICES = (8, 16, 32, 64, 128, 256, 512, 1024)
GATHER_CHOICES = (1, 2, 4, 8, 16)

# DP16KD aspect ratios (width, depth); iCE40 EBR (width, depth).
_BRAM_SHAPES = {
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
}


def _mux(k: int) -> float:
    return MUX_LUT * max(0, k - 1)


def _blocks(width: int, depth: int, family: str) -> int:
    """Block RAMs for a width x depth memory in its cheapest aspect ratio."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES[family])


def bram_blocks(width: int, depth: int, family: str = "ecp5") -> int:
    """Block RAMs for a width x depth memory in its cheapest aspect ratio (0 when it stays in LUTs)."""
    return 0 if width * depth < BRAM_MIN_BITS else _blocks(width, depth, family)


def rom_blocks(width: int, words: int, family: str = "ecp5") -> int:
    """Block RAMs of a stream ROM: yosys 0.70 also puts a ROM of more than
    ``ROM_LUT_WORDS`` words in block RAM, however few its bits (measured on the
    designs of benchmarks/bench_estimate.py)."""
    return _blocks(width, words, family) if words > ROM_LUT_WORDS else bram_blocks(width, words, family)


def sums_blocks(width: int, channels: int, family: str = "ecp5") -> int:
    """Block RAMs of a layer's sums memory: iCE40 has no LUT RAM, and yosys 0.70
    puts one of ``ICE40_SUMS_EBR_CHANNELS`` words or more in an EBR."""
    if family == "ice40" and channels >= ICE40_SUMS_EBR_CHANNELS:
        return _blocks(width, channels, family)
    return bram_blocks(width, channels, family)


def _front_ffs(front: dict, elem_bits: int, n: int) -> int:
    kind = front["kind"]
    if kind == "vector":
        return n * elem_bits + 1
    if kind == "collect":
        return front["height"] * front["width"] * front["channels"] * elem_bits + 1
    padded_width = front["width"] + 2 * front["padding"]
    return window_register_bits(front, elem_bits) + 2 * clog2(padded_width) + clog2(front["height"] * front["width"])


def estimate_layer(plan: LayerPlan, front: dict, *, scores: bool = False, family: str = "ecp5") -> dict:
    """LUT4s, carry cells, flip-flops and block RAMs of one folded binary layer."""
    c, n, s, g, b = plan.channels, plan.n, plan.simd, plan.gather, plan.elem_bits
    lay = plan.layout
    has_children = bool((plan.schedule.parent >= 0).any())
    vw = width_of(min(plan.value_range[0], 0), plan.value_range[1])
    m, l = plan.word_bits, plan.peek_bits
    words = plan.stream_words + PAD_WORDS

    luts = 0.0
    # SIMD: chunk multiplexer per lane, XNOR + popcount (integer inputs: signed adders of B bits).
    luts += s * b * _mux(plan.chunks)
    luts += POPCOUNT_LUT * s * (1 if plan.binary else b)
    # Reader: funnel shifter, pointer arithmetic; controller field muxes and counters.
    # A plain layer reads at most flag + S weight bits (or flag + N) of the peek
    # window; yosys removes the shifter outputs beyond them.
    peek_used = l if has_children else min(l, 1 + (s if plan.chunks > 1 else n))
    # Pointer: the step ROM's counter (layers with children, W steps) or a plain layer's offset adder (its step
    # counters replace the controller's consumption mux of before, in the same coefficient).
    steps = plan.window_cycles
    luts += SHIFT_LUT * peek_used * clog2(m) + 3 * clog2(words)
    luts += 2 * clog2(steps + 1) if has_children else 3 * clog2(m)
    luts += s + 2 * clog2(n + 1) + 2 * clog2(c) + 16
    if has_children:
        luts += g * lay.entry_bits  # first-step / continuation entry select
        luts += g * b * _mux(n) + POPCOUNT_LUT * g * (1 if plan.binary else b)
        luts += 3 * vw  # parent combine: the value and the threshold margin, each one add after the sums memory
    # Accumulator, threshold compare, output wiring.
    luts += 2 * vw
    if not scores:
        luts += vw + 2
    # Front end: window generator counters / quantiser compares (small), collector nothing.
    luts += 24

    ffs = _front_ffs(front, b, n)
    ffs += 2 * m + 2 * clog2(words) + 1 + peek_used  # reader: buffer, word addresses, peek register
    if has_children:  # step and entry, the flags register
        ffs += clog2(steps + 1) + step_entry_bits(m, STEP_FLAG_BITS) + STEP_FLAG_BITS
    else:  # offset, record's step and record counters
        ffs += clog2(m) + clog2(max(2, plan.chunks)) + clog2(max(2, c))
    ffs += 3 + clog2(max(2, plan.chunks)) + clog2(n + 1) + 2 * clog2(max(2, c)) + 1  # controller
    ffs += s + clog2(max(2, plan.chunks)) + clog2(max(2, c)) + 6  # step register
    ffs += vw * 2 + clog2(max(2, c)) + 3  # accumulator, finish registers
    term_bits = 1 if plan.binary else b + 1
    ffs += sum(tree_register_widths(s, term_bits)) + 4 + clog2(max(2, c))  # datapath pipeline: partial sums, B2 step fields
    if has_children:
        ffs += sum(tree_register_widths(g, term_bits)) + clog2(max(2, c)) + clog2(n + 1) + 1  # gather partials, B2 child fields
        # Only a child record carries parent, length, negate and gather entries;
        # in a plain layer they are constant and yosys removes their registers.
        ffs += 2 * clog2(n + 1) + clog2(max(2, c)) + 2  # controller: remaining, length, parent, negate, batch flag
        ffs += g * lay.entry_bits + clog2(max(2, c)) + clog2(n + 1) + clog2(g + 1) + 2  # step register
        ffs += clog2(n + 1) + 1  # finish: length, negate
    out_bits = c * (width_of(min(plan.y_of(plan.value_range[0]), -1), max(plan.y_of(plan.value_range[1]), 0)) if scores else 1)
    ffs += 2 * out_bits + 1  # result shift register, output register, out_valid

    bram = rom_blocks(m, words, family)
    if bram == 0:
        luts += words * m / 16 * 1.5  # a small ROM in LUTs
    if has_children:  # the step ROM
        step_bits = step_entry_bits(m, STEP_FLAG_BITS)
        step_bram = rom_blocks(step_bits, steps, family)
        bram += step_bram
        if step_bram == 0:
            luts += steps * step_bits / 16 * 0.5  # regular tables: yosys maps them tighter than the stream ROM
    if has_children:
        sb = sums_blocks(vw, c, family)
        bram += sb
        if sb == 0:
            luts += 2 * math.ceil(c / 16) * math.ceil(vw / 4)  # TRELLIS_DPR16X4 (2 LUT4 sites each)
    if not scores:
        cw = vw + 2
        tb = bram_blocks(cw, c, family)
        bram += tb
        if tb == 0:
            luts += cw * math.ceil(c / 8)
    carry = math.ceil(vw / 2) * 3
    return {"luts": int(math.ceil(luts)), "carry": int(carry), "ffs": int(ffs), "bram": int(bram),
            "storage_bits": plan.storage_bits, "window_cycles": plan.window_cycles}


def _pool_estimate(stage) -> dict:
    """A max-pool stage (a :class:`~mstbnn.hw.plan.PoolItem` or its plan): window front without padding, OR, register."""
    f = stage.front
    ffs = window_register_bits(f) + f["channels"] + 1 + 2 * clog2(f["width"])
    luts = f["channels"] * math.ceil((f["kernel"] ** 2 - 1) / 3) + 16
    return {"luts": luts, "carry": 0, "ffs": ffs, "bram": 0}


def _argmax_estimate(classes: int, score_width: int) -> dict:
    """The sequential argmax: a C:1 score mux, one comparator, registers."""
    return {
        "luts": int(math.ceil(score_width * _mux(classes) + 2 * score_width + 2 * clog2(classes + 1) + 4)),
        "carry": math.ceil(score_width / 2),
        "ffs": 2 * classes * score_width + score_width + 2 * clog2(classes) + clog2(classes + 1) + 2,
        "score_output_ffs": classes * score_width,  # the output payload's scores drive only out_scores
        "bram": 0,
    }


def estimate_engine(plan, family: str = "ecp5") -> dict:
    """Estimate of a :class:`~mstbnn.hw.folded.network.FoldedEnginePlan`: totals plus per stage."""
    parts = []
    for stage in plan.stages[:-1]:
        if isinstance(stage, FoldedStagePlan):
            parts.append(estimate_layer(stage.layer, stage.front, scores=stage.threshold is None, family=family))
        else:
            parts.append(_pool_estimate(stage))
    parts.append(_argmax_estimate(plan.classes, plan.score_width))
    return _total(parts)


def _total(parts: list[dict]) -> dict:
    out = {k: sum(p.get(k, 0) for p in parts) for k in ("luts", "carry", "ffs", "bram", "score_output_ffs")}
    out["stages"] = parts
    return out


def _network_parts(net, reuse: bool):
    """(items, fixed): the parsed IR items, and the estimates of pool stages and argmax (independent of S, G)."""
    items = stream_items(net, reuse)
    fixed, score = [], None
    for item in items:
        if isinstance(item, PoolItem):
            fixed.append(_pool_estimate(item))
        elif item.threshold is None:
            layer = item.layer
            plan = LayerPlan(layer.weight_matrix, item.schedule, 1, 1, binary=item.binary,
                             elem_bits=item.elem_bits, elem_signed=item.elem_signed)
            lo, hi = plan.value_range
            score = (plan.channels, width_of(min(plan.y_of(lo), -1), max(plan.y_of(hi), 0)))
    fixed.append(_argmax_estimate(*score))
    return items, fixed


def _timing_specs(items, walks):
    specs, walks = [], iter(walks)
    for item in items:
        if isinstance(item, PoolItem):
            specs.append(dict(item.front))
        else:
            specs.append(dict(item.front, walk=next(walks), folded=True))
    return specs


def estimate_network(net, *, reuse: bool = True, config=None, family: str = "ecp5") -> dict:
    """Estimate without building Amaranth components (fast enough for vgg-sized networks).

    Also returns ``image_cycles``, the steady-state cycles per image
    (:func:`mstbnn.hw.folded.timing.bottleneck_cycles`), and per-layer
    figures under ``stages``.
    """
    from mstbnn.hw.folded.network import layer_plans
    from mstbnn.hw.folded.timing import bottleneck_cycles

    items, fixed = _network_parts(net, reuse)
    plans = layer_plans(net, reuse=reuse, config=config)
    binaries = [item for item in items if not isinstance(item, PoolItem)]
    parts = [estimate_layer(p, it.front, scores=it.threshold is None, family=family) for p, it in zip(plans, binaries)]
    out = _total(parts + fixed)
    shape = tuple(net.layers[0].shape)
    beats = shape[1] * shape[2] if len(shape) == 3 else 1
    out["image_cycles"] = bottleneck_cycles(_timing_specs(items, [p.window_cycles for p in plans]), beats)
    out["storage_bits"] = sum(p.storage_bits for p in plans)
    out["config"] = [(p.simd, p.gather) for p in plans]
    return out


def _candidate_schedules(layer, s: int, g: int, retree: bool):
    """Schedules worth trying for a layer at (S, G): the compiled one, the cycle-weighted tree."""
    from mstbnn.compiler.mst import build_schedule

    cands = [layer.schedule]
    if retree:
        cands.append(build_schedule(layer.weight_matrix.astype(bool), edge_cost=cycles_edge_cost(layer.fan_in, s, g)))
    return cands


def _storage_schedule(layer):
    """The minimum-storage forest of a layer (every record as small as it can be)."""
    from mstbnn.compiler.mst import build_schedule
    from mstbnn.compiler.storage import storage_edge_cost

    return build_schedule(layer.weight_matrix.astype(bool), edge_cost=storage_edge_cost(layer.fan_in, layer.out_channels))


def _lut_sites(est: dict, family: str) -> int:
    return est["luts"] + (2 * est["carry"] if family == "ecp5" else 0)


def choose_config(net, device, *, reuse: bool = True, retree: bool = True, lut_share: float = 0.85,
                  bram_share: float = 1.0, max_steps: int = 500):
    """Pick S and G per binary layer to fit ``device`` at the fewest cycles per image.

    ``device`` is anything with ``name``, ``family``, ``luts``, ``ffs`` and
    ``bram`` (e.g. :class:`mstbnn.devices.Device`; a top-level module every stage may read).

    Greedy: start every layer at the smallest (S, G) with its fastest tree,
    or, when those stores overflow the block RAM, with its minimum-storage
    forest (:func:`mstbnn.compiler.storage.storage_edge_cost`); then
    repeatedly give the bottleneck layer (most cycles per image) the change
    of S, G or tree that lowers its cycles most per added LUT, while the
    whole engine's estimate stays within ``lut_share`` of the device's LUTs
    (placement headroom), its flip-flops and ``bram_share`` of its block
    RAMs; stop when the bottleneck cannot speed up. With ``retree`` the
    fastest tree at (S, G) is the better of the compiled tree and one built
    with the MST edge weight set to the hardware cost (max(1, ceil(d / G))
    per child, ceil(N / S) per root).

    Returns
    -------
    (net, config, estimate) : a copy of ``net`` carrying the chosen
    schedules, the (S, G) pair per binary layer, and the estimate.
    Raises UserError when even the smallest configuration does not fit.
    """
    import copy

    from mstbnn.errors import UserError
    from mstbnn.hw.estimate import ESTIMATE_ERROR

    dev = device
    net = copy.deepcopy(net)
    items, fixed = _network_parts(net, reuse)
    binaries = [item for item in items if not isinstance(item, PoolItem)]
    shapes = net.shapes()
    windows = [int(shapes[it.index][1] * shapes[it.index][2]) if it.layer.kind == "conv2d" else 1 for it in binaries]
    sched_cache: dict = {}
    est_cache: dict = {}
    small_cache: dict = {}

    def schedule(k, s, g, mode):
        """mode "fast": the fewest cycles among the candidates; "small": the minimum-storage forest."""
        if not reuse:
            return binaries[k].schedule
        if mode == "small":
            if k not in small_cache:
                small_cache[k] = _storage_schedule(binaries[k].layer)
            return small_cache[k]
        key = (k, s, g)
        if key not in sched_cache:
            layer = binaries[k].layer
            cands = _candidate_schedules(layer, s, g, retree)
            sched_cache[key] = min(cands, key=lambda sc: window_cycles(sc, layer.fan_in, s, g))
        return sched_cache[key]

    def layer_est(k, s, g, mode):
        key = (k, s, g, mode)
        if key not in est_cache:
            it = binaries[k]
            plan = LayerPlan(it.layer.weight_matrix, schedule(k, s, g, mode), s, g, binary=it.binary,
                             elem_bits=it.elem_bits, elem_signed=it.elem_signed)
            est_cache[key] = estimate_layer(plan, it.front, scores=it.threshold is None, family=dev.family)
        return est_cache[key]

    def total(cfg):
        return _total([layer_est(k, *c) for k, c in enumerate(cfg)] + fixed)

    def fits(est):
        return (_lut_sites(est, dev.family) <= lut_share * dev.luts and est["ffs"] <= dev.ffs
                and est["bram"] <= bram_share * dev.bram)

    def busy(k, s, g, mode):
        walk = window_cycles(schedule(k, s, g, mode), binaries[k].layer.fan_in, s, g)
        return windows[k] * window_busy_cycles(walk)

    start = [(min(SIMD_CHOICES[0], it.layer.fan_in), GATHER_CHOICES[0]) for it in binaries]
    modes = ("fast", "small") if reuse else ("fast",)
    for mode in modes:  # the fastest trees first; the smallest stores when those overflow the block RAM
        cfg = [(s, g, mode) for s, g in start]
        est = total(cfg)
        if fits(est):
            break
    else:
        raise UserError(
            f"folded engine does not fit {dev.name} even at S={SIMD_CHOICES[0]}, G={GATHER_CHOICES[0]}"
            f"{' with minimum-storage trees' if reuse else ''}: "
            f"estimated {_lut_sites(est, dev.family):,} LUTs / {dev.luts:,}, {est['ffs']:,} FFs / {dev.ffs:,}, "
            f"{est['bram']} BRAMs / {dev.bram}, an estimate within {100 * ESTIMATE_ERROR['folded']:.0f}% of "
            f"yosys; choose a larger device or a smaller network"
        )
    for _ in range(max_steps):
        k = max(range(len(cfg)), key=lambda i: (busy(i, *cfg[i]), -i))
        s0, g0, m0 = cfg[k]
        now = busy(k, s0, g0, m0)
        base = _lut_sites(est, dev.family)
        best = None
        for mode in modes:
            for s in SIMD_CHOICES:
                s = min(s, binaries[k].layer.fan_in)
                for g in GATHER_CHOICES if reuse else (g0,):
                    if (s, g, mode) == (s0, g0, m0) or s < s0 or g < g0:
                        continue
                    gain = now - busy(k, s, g, mode)
                    if gain <= 0:
                        continue
                    trial = list(cfg)
                    trial[k] = (s, g, mode)
                    t_est = total(trial)
                    if not fits(t_est):
                        continue
                    score = (-gain / max(1, _lut_sites(t_est, dev.family) - base), s, g, mode)
                    if best is None or score < best[0]:
                        best = (score, trial, t_est)
        if best is None:
            break  # the bottleneck cannot speed up within the budget: nothing else raises throughput
        _, cfg, est = best
    if reuse:
        for k, (s, g, mode) in enumerate(cfg):
            binaries[k].layer.schedule = schedule(k, s, g, mode)
    pairs = [(s, g) for s, g, _ in cfg]
    return net, pairs, estimate_network(net, reuse=reuse, config=pairs, family=dev.family)
