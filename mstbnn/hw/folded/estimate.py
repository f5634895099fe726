"""Resource estimate of the folded engine and the per-layer choice of S and G.

The estimate is a sum of per-part formulas whose LUT coefficients were
calibrated on single components with yosys 0.70 ``synth_ecp5 -nowidelut
-noabc9`` (see ``docs/folded.md``, "Calibration"):

- a k:1 multiplexer of one bit: ``MUX_LUT * (k - 1)`` LUT4s (0.9);
- a popcount of b XNOR terms: ``POPCOUNT_LUT * b`` LUT4s (2.7);
- the stream reader's funnel shifter: L outputs x ceil(log2 M) levels;
- register and memory bits are counted exactly from the plan.

Block RAM: every layer's stream ROM is one M-bit-wide memory of
``ceil(bits / M) + 3`` words, mapped to DP16KD (18 kbit; 512 x 36 ... 16k x 1)
in the cheapest aspect ratio; memories under ``BRAM_MIN_BITS`` are assumed
to go to LUT RAM / logic instead. The sums memory (C x value width) and the
threshold table (C entries) likewise.

iCE40 is not modelled in detail: the same LUT4 count is reported, with
4-kbit EBRs for the memories.
"""

from __future__ import annotations

import math

from mstbnn.boards.devices import get_device
from mstbnn.compiler.cost import clog2
from mstbnn.hw.components import WindowGenerator, width_of
from mstbnn.hw.folded.plan import LayerPlan, cycles_edge_cost, window_cycles

__all__ = [
    "MUX_LUT",
    "POPCOUNT_LUT",
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
BRAM_MIN_BITS = 4096
SIMD_CHOICES = (8, 16, 32, 64, 128, 256, 512)
GATHER_CHOICES = (1, 2, 4, 8, 16)

# DP16KD aspect ratios (width, depth); iCE40 EBR (width, depth).
_BRAM_SHAPES = {
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
}


def _mux(k: int) -> float:
    return MUX_LUT * max(0, k - 1)


def bram_blocks(width: int, depth: int, family: str = "ecp5") -> int:
    """Block RAMs for a width x depth memory in its cheapest aspect ratio (0 when it stays in LUTs)."""
    if width * depth < BRAM_MIN_BITS:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES[family])


def _front_ffs(front: dict, elem_bits: int, n: int) -> int:
    kind = front["kind"]
    if kind == "vector":
        return n * elem_bits + 1
    if kind == "collect":
        return front["height"] * front["width"] * front["channels"] * elem_bits + 1
    wg = WindowGenerator(front["channels"], front["height"], front["width"], front["kernel"], front["stride"],
                         front["padding"], elem_bits=elem_bits)
    ffs = wg.register_bits + 2 * clog2(wg.padded_width) + clog2(front["height"] * front["width"])
    _discard(wg)
    return ffs


def _discard(component) -> None:
    """Mark a component built only for its plan as used (no UnusedElaboratable warning)."""
    component._MustUse__silence = True


def estimate_layer(plan: LayerPlan, front: dict, *, scores: bool = False, family: str = "ecp5") -> dict:
    """LUT4s, carry cells, flip-flops and block RAMs of one folded binary layer."""
    c, n, s, g, b = plan.channels, plan.n, plan.simd, plan.gather, plan.elem_bits
    lay = plan.layout
    has_children = bool((plan.schedule.parent >= 0).any())
    vw = width_of(min(plan.value_range[0], 0), plan.value_range[1])
    m, l = plan.word_bits, plan.peek_bits
    words = plan.stream_words + 3

    luts = 0.0
    # SIMD: chunk multiplexer per lane, XNOR + popcount (integer inputs: signed adders of B bits).
    luts += s * b * _mux(plan.chunks)
    luts += POPCOUNT_LUT * s * (1 if plan.binary else b)
    # Reader: funnel shifter, pointer arithmetic; controller field muxes and counters.
    luts += l * clog2(m) + 3 * clog2(m) + 2 * clog2(words)
    luts += s + 2 * clog2(n + 1) + 2 * clog2(c) + 16
    if has_children:
        luts += g * lay.entry_bits  # first-step / continuation entry select
        luts += g * b * _mux(n) + POPCOUNT_LUT * g * (1 if plan.binary else b)
        luts += 2 * vw  # parent combine
    # Accumulator, threshold compare, output wiring.
    luts += 2 * vw
    if not scores:
        luts += vw + 2
    # Front end: window generator counters / quantiser compares (small), collector nothing.
    luts += 24

    ffs = _front_ffs(front, b, n)
    ffs += 2 * m + clog2(words) + clog2(m) + 1  # reader
    ffs += 3 + clog2(max(2, plan.chunks)) + 3 * clog2(n + 1) + 3 * clog2(max(2, c)) + 1  # controller
    ffs += vw * 2 + clog2(n + 1) + clog2(max(2, c)) + 4  # accumulator, finish registers
    out_bits = c * (width_of(min(plan.y_of(plan.value_range[0]), -1), max(plan.y_of(plan.value_range[1]), 0)) if scores else 1)
    ffs += 2 * out_bits + 1  # result shift register, output register, out_valid

    bram = bram_blocks(m, words, family)
    if bram == 0:
        luts += words * m / 16 * 1.5  # a small ROM in LUTs
    if has_children:
        sb = bram_blocks(vw, c, family)
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
    f = stage.front
    wg = WindowGenerator(f["channels"], f["height"], f["width"], f["kernel"], f["stride"], 0)
    ffs = wg.register_bits + f["channels"] + 1 + 2 * clog2(wg.padded_width)
    _discard(wg)
    luts = f["channels"] * math.ceil((f["kernel"] ** 2 - 1) / 3) + 16
    return {"luts": luts, "carry": 0, "ffs": ffs, "bram": 0}


def _argmax_estimate(classes: int, score_width: int) -> dict:
    return {
        "luts": (classes - 1) * (score_width + score_width + clog2(classes)),
        "carry": (classes - 1) * math.ceil(score_width / 2),
        "ffs": 2 * classes * score_width + clog2(classes) + 2,
        "bram": 0,
    }


def estimate_engine(engine, family: str = "ecp5") -> dict:
    """Estimate of a :class:`~mstbnn.hw.folded.network.FoldedNetworkEngine`: totals plus per stage."""
    from mstbnn.hw.folded.stage import FoldedStage

    parts = []
    for stage in engine.stages[:-1]:
        if isinstance(stage, FoldedStage):
            parts.append(estimate_layer(stage.plan, stage.front, scores=stage.threshold is None, family=family))
        else:
            parts.append(_pool_estimate(stage))
    parts.append(_argmax_estimate(engine.classes, engine.score_width))
    return _total(parts)


def _total(parts: list[dict]) -> dict:
    out = {k: sum(p[k] for p in parts) for k in ("luts", "carry", "ffs", "bram")}
    out["stages"] = parts
    return out


def estimate_network(net, *, reuse: bool = True, config=None, family: str = "ecp5") -> dict:
    """Estimate without building Amaranth components for the layers (fast enough for vgg-sized networks).

    Also returns the cycle figures: W per layer, windows per image, and the
    bottleneck cycles per image (see :func:`mstbnn.hw.folded.timing.bottleneck_cycles`).
    """
    from mstbnn.hw.folded.network import _parse, layer_plans
    from mstbnn.hw.folded.timing import bottleneck_cycles

    plans = iter(layer_plans(net, reuse=reuse, config=config))
    parts, timing = [], []
    score = None
    for kind, item in _parse(net, reuse):
        if kind == "pool":
            c, h, w, k, s = item
            front = {"kind": "window", "channels": c, "height": h, "width": w, "kernel": k, "stride": s, "padding": 0}

            class _P:  # the pool stage's plan-level view
                pass

            p = _P()
            p.front = front
            parts.append(_pool_estimate(p))
            timing.append(dict(front))
            continue
        plan = next(plans)
        scores = item["threshold"] is None
        est = estimate_layer(plan, item["front"], scores=scores, family=family)
        parts.append(est)
        timing.append(dict(item["front"], walk=plan.window_cycles, folded=True))
        if scores:
            lo, hi = plan.value_range
            score = (plan.channels, width_of(min(plan.y_of(lo), -1), max(plan.y_of(hi), 0)))
    parts.append(_argmax_estimate(*score))
    shape = tuple(net.layers[0].shape)
    beats = shape[1] * shape[2] if len(shape) == 3 else 1
    out = _total(parts)
    out["image_cycles"] = bottleneck_cycles(timing, beats)
    return out


def _candidate_schedules(layer, s: int, g: int, reuse: bool, retree: bool):
    """The layer's schedule, and (with ``retree``) one built with the folded cycle cost as edge weight."""
    from mstbnn.compiler.mst import build_schedule
    from mstbnn.compiler.schedule import Schedule

    if not reuse:
        return [Schedule.plain(layer.out_channels)]
    cands = [layer.schedule]
    if retree:
        cands.append(build_schedule(layer.weight_matrix.astype(bool), edge_cost=cycles_edge_cost(layer.fan_in, s, g)))
    return cands


def choose_config(net, device: str, *, reuse: bool = True, retree: bool = True, lut_share: float = 0.85,
                  bram_share: float = 1.0, max_steps: int = 200):
    """Pick S and G per binary layer to fit ``device`` at the fewest cycles per image.

    Greedy: start every layer at the smallest (S, G); repeatedly give the
    bottleneck layer (most cycles per image) the upgrade that lowers its
    cycles most per added LUT, while the whole engine's estimate stays within
    ``lut_share`` of the device's LUTs (placement headroom), its flip-flops
    and ``bram_share`` of its block RAMs. With ``retree`` every candidate
    (S, G) also tries a schedule built with the MST edge weight set to the
    hardware cost (max(1, ceil(d / G)) per child, ceil(N / S) per root), and
    keeps it where it needs fewer cycles.

    Returns
    -------
    (net, config, estimate) : a copy of ``net`` whose schedules are the chosen
    ones, the (S, G) pairs per binary layer, and the estimate of the result.
    Raises UserError when even the smallest configuration does not fit.
    """
    import copy

    from mstbnn.errors import UserError

    dev = get_device(device)
    net = copy.deepcopy(net)
    layers = [layer for _, layer in net.binary_layers()]
    shapes = net.shapes()
    windows = []
    for i, layer in net.binary_layers():
        windows.append(int(shapes[i][1] * shapes[i][2]) if layer.kind == "conv2d" else 1)
    cache: dict = {}

    def best_schedule(k, s, g):
        key = (k, s, g)
        if key not in cache:
            layer = layers[k]
            cands = _candidate_schedules(layer, s, g, reuse, retree)
            cache[key] = min(cands, key=lambda sc: window_cycles(sc, layer.fan_in, s, g))
        return cache[key]

    def apply(cfg):
        for k, (s, g) in enumerate(cfg):
            if reuse:
                layers[k].schedule = best_schedule(k, s, g)

    def fits(est):
        lut_sites = est["luts"] + (2 * est["carry"] if dev.family == "ecp5" else 0)
        return lut_sites <= lut_share * dev.luts and est["ffs"] <= dev.ffs and est["bram"] <= bram_share * dev.bram

    def layer_cycles(k, s, g):
        return windows[k] * window_cycles(best_schedule(k, s, g), layers[k].fan_in, s, g)

    cfg = [(min(SIMD_CHOICES[0], layer.fan_in), GATHER_CHOICES[0]) for layer in layers]
    apply(cfg)
    est = estimate_network(net, reuse=reuse, config=cfg, family=dev.family)
    if not fits(est):
        lut_sites = est["luts"] + (2 * est["carry"] if dev.family == "ecp5" else 0)
        raise UserError(
            f"folded engine does not fit {dev.name} even at S={SIMD_CHOICES[0]}, G={GATHER_CHOICES[0]}: "
            f"estimated {lut_sites:,} LUTs / {dev.luts:,}, {est['ffs']:,} FFs / {dev.ffs:,}, "
            f"{est['bram']} BRAMs / {dev.bram}; choose a larger --device or a smaller network"
        )
    frozen = set()
    for _ in range(max_steps):
        order = sorted((k for k in range(len(layers)) if k not in frozen), key=lambda k: -layer_cycles(k, *cfg[k]))
        if not order:
            break
        k = order[0]
        s0, g0 = cfg[k]
        now = layer_cycles(k, s0, g0)
        options = []
        for s in SIMD_CHOICES:
            for g in GATHER_CHOICES:
                s_eff = min(s, layers[k].fan_in)
                if (s_eff, g) == (s0, g0) or s_eff < s0 or g < g0:
                    continue
                if g > g0 and not reuse:
                    continue
                gain = now - layer_cycles(k, s_eff, g)
                if gain > 0:
                    options.append((s_eff, g, gain))
        taken = False
        base_luts = est["luts"] + 2 * est["carry"]
        scored = []
        for s, g, gain in options:
            trial = list(cfg)
            trial[k] = (s, g)
            apply(trial)
            t_est = estimate_network(net, reuse=reuse, config=trial, family=dev.family)
            if fits(t_est):
                cost = max(1, t_est["luts"] + 2 * t_est["carry"] - base_luts)
                scored.append((-gain / cost, s, g, t_est))
        apply(cfg)
        if scored:
            scored.sort(key=lambda t: (t[0], t[1], t[2]))
            _, s, g, est = scored[0]
            cfg[k] = (s, g)
            apply(cfg)
            taken = True
        if not taken:
            frozen.add(k)  # the bottleneck cannot grow: nothing else would raise throughput
            break
    est = estimate_network(net, reuse=reuse, config=cfg, family=dev.family)
    return net, cfg, est
