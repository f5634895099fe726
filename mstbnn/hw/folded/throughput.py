"""A throughput target for the folded engine: the smallest configuration that meets F images/s.

``mstbnn verilog DIR --engine folded --device D --target-fps F`` runs
:func:`choose_for_target` in the configuration pass (:func:`mstbnn.hw.spec.configure`).

Images/s = expected clock / II, II from the exact flow model
(:func:`mstbnn.hw.folded.timing.flow_model`), the clock from
:data:`EXPECTED_FMAX_MHZ` (an assumption until the engine is placed; ``synth``
then reports placed Fmax / II beside the target).

The search is exact over its candidate set: per binary layer every
(S, G, tree) with S in ``simd_choices`` (capped at the fan-in), G in
``gather_choices`` (the baseline has no children: G = 1) and tree among the
compiled schedule, the cycle-weighted tree at (S, G) and the minimum-storage
forest (reuse only). The II depends on a layer's configuration only through
its walk cycles W, so per layer and W only the candidates not dominated in
(LUT4-eq, block RAM, flip-flops) are kept; a layer whose
windows x (W + 1) alone exceeds the cycle budget cannot meet it (the
bottleneck bound is <= the exact II). Combinations are then visited in
increasing total LUT4-eq (best-first over the per-layer lists, ties by
block RAM then the order of the choices), and the first that fits the
device (LUT4-eq <= ``lut_share`` of its LUTs, FFs, block RAM) and whose
exact II meets the budget is the answer: no cheaper candidate meets F.
LUT4-eq = LUT4 + 2 x carry cells on ECP5 (the boards report's LUT sites).
"""

from __future__ import annotations

import copy
import heapq
import math

from mstbnn.errors import UserError
from mstbnn.hw.folded.estimate import (
    GATHER_CHOICES,
    SIMD_CHOICES,
    _candidate_schedules,
    _lut_sites,
    _network_parts,
    _storage_schedule,
    _timing_specs,
    _total,
    estimate_layer,
)
from mstbnn.hw.folded.plan import LayerPlan, window_cycles
from mstbnn.hw.folded.timing import window_busy_cycles
from mstbnn.hw.plan import PoolItem

__all__ = ["EXPECTED_FMAX_MHZ", "expected_fmax_mhz", "choose_for_target", "TargetChoice", "MAX_EVALUATIONS"]

# Expected clock of the folded engine per device family, MHz: an ASSUMPTION until the engine is placed.
# ECP5: the first placement with the step-ROM reader, the SFC-shaped reuse engine (784-256-256-256-10,
# S = 512) on ECP5-85k at 43.9 MHz, rounded down. Since the datapath and reader registers the
# placements of benchmarks/bench_folded.py --mnist run 48.3-72.3 MHz, so it is conservative; it is
# kept until those points are placed again at a new value (docs/folded.md, "Not done").
# iCE40: no folded engine has been placed; 30 MHz is a guess (two-thirds of ECP5's) to be replaced by one.
EXPECTED_FMAX_MHZ = {"ecp5": 43.0, "ice40": 30.0}
MAX_EVALUATIONS = 2000  # exact flow-model runs before the search gives up (each replays a few images)


def expected_fmax_mhz(family: str) -> float:
    if family not in EXPECTED_FMAX_MHZ:
        raise UserError(f"no expected folded-engine clock for device family {family!r}; "
                        f"known: {', '.join(sorted(EXPECTED_FMAX_MHZ))}")
    return EXPECTED_FMAX_MHZ[family]


class TargetChoice:
    """What the search chose: ``net`` (chosen schedules), ``config`` [(S, G)], ``trees``, ``ii``, ``fps``, ``estimate``."""

    def __init__(self, net, config, trees, ii, fmax_mhz, estimate):
        self.net, self.config, self.trees, self.ii = net, config, trees, ii
        self.fmax_mhz = fmax_mhz
        self.fps = fmax_mhz * 1e6 / ii
        self.estimate = estimate


def _layer_candidates(binaries, windows, reuse, retree, family, simd_choices, gather_choices):
    """Per layer, the candidates kept: dicts with s, g, tree, schedule, walk, busy, lut, bram, ffs, est."""
    out = []
    for k, it in enumerate(binaries):
        layer = it.layer
        n = layer.fan_in
        seen, cands = set(), []
        for s0 in simd_choices:
            s = min(int(s0), n)
            for g in (gather_choices if reuse else (1,)):
                if (s, g) in seen:
                    continue
                seen.add((s, g))
                if reuse:
                    trees = list(zip(("compiled", "cycles"), _candidate_schedules(layer, s, g, retree)))
                    trees.append(("storage", _storage_schedule(layer)))
                else:
                    trees = [("plain", it.schedule)]
                for tree, sched in trees:
                    plan = LayerPlan(layer.weight_matrix, sched, s, g, binary=it.binary, elem_bits=it.elem_bits,
                                     elem_signed=it.elem_signed)
                    est = estimate_layer(plan, it.front, scores=it.threshold is None, family=family)
                    walk = window_cycles(sched, n, s, g)
                    cands.append(dict(s=s, g=g, tree=tree, schedule=sched, walk=walk,
                                      busy=windows[k] * window_busy_cycles(walk),
                                      lut=_lut_sites(est, family), bram=est["bram"], ffs=est["ffs"], est=est))
        # II depends on the layer only through W: per W keep the undominated (LUT4-eq, BRAM, FF) candidates
        cands.sort(key=lambda c: (c["lut"], c["bram"], c["ffs"], c["walk"]))
        kept = []
        for c in cands:
            if not any(o["walk"] == c["walk"] and o["lut"] <= c["lut"] and o["bram"] <= c["bram"] and o["ffs"] <= c["ffs"]
                       for o in kept):
                kept.append(c)
        out.append(kept)
    return out


def choose_for_target(net, device, target_fps: float, *, reuse: bool = True, retree: bool = True,
                      lut_share: float = 0.85, bram_share: float = 1.0, simd_choices=SIMD_CHOICES,
                      gather_choices=GATHER_CHOICES, fmax_mhz: float | None = None,
                      max_evaluations: int = MAX_EVALUATIONS) -> TargetChoice:
    """The fewest-LUT4-eq folded configuration of ``net`` on ``device`` that meets ``target_fps``.

    ``fmax_mhz`` defaults to :func:`expected_fmax_mhz` of the device's family.
    Raises UserError (one line, with the best images/s found and its
    configuration) when no candidate meets the target.
    """
    from mstbnn.hw.folded.timing import bottleneck_cycles, flow_model

    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise UserError(f"--target-fps {target_fps}: give a positive number of images per second")
    fmax = float(fmax_mhz) if fmax_mhz is not None else expected_fmax_mhz(device.family)
    budget = math.floor(fmax * 1e6 / target_fps)  # cycles per image the target allows: the largest II with
    if fmax * 1e6 / (budget + 1) >= target_fps:     # fmax / II >= target, exactly as fps is computed
        budget += 1
    net = copy.deepcopy(net)
    items, fixed = _network_parts(net, reuse)
    binaries = [it for it in items if not isinstance(it, PoolItem)]
    shapes = net.shapes()
    windows = [int(shapes[it.index][1] * shapes[it.index][2]) if it.layer.kind == "conv2d" else 1 for it in binaries]
    shape = tuple(net.layers[0].shape)
    beats = shape[1] * shape[2] if len(shape) == 3 else 1
    classes = next(p for p in reversed(items) if not isinstance(p, PoolItem)).layer.out_channels
    fixed_total = _total(fixed)
    fixed_lut = _lut_sites(fixed_total, device.family)
    cands = _layer_candidates(binaries, windows, reuse, retree, device.family, simd_choices, gather_choices)

    ii_cache: dict = {}

    def exact_ii(walks):
        if walks not in ii_cache:
            specs = _timing_specs(items, walks) + [{"kind": "argmax", "classes": classes}]
            ii_cache[walks] = flow_model(specs, beats)["initiation_interval"]
        return ii_cache[walks]

    def fits(combo):
        lut = fixed_lut + sum(c["lut"] for c in combo)
        return (lut <= lut_share * device.luts and fixed_total["ffs"] + sum(c["ffs"] for c in combo) <= device.ffs
                and fixed_total["bram"] + sum(c["bram"] for c in combo) <= bram_share * device.bram)

    def choice(combo, ii):
        if reuse:
            for it, c in zip(binaries, combo):
                it.layer.schedule = c["schedule"]
        est = _total([c["est"] for c in combo] + fixed)
        return TargetChoice(net, [(c["s"], c["g"]) for c in combo], [c["tree"] for c in combo], ii, fmax, est)

    def describe(ch: TargetChoice) -> str:
        layers = ", ".join(f"{s}/{g}" + (f" {t}" if reuse else "") for (s, g), t in zip(ch.config, ch.trees))
        return (f"{ch.fps:,.0f} images/s (II {ch.ii:,} cycles at the expected {fmax:g} MHz; S/G per layer: {layers}; "
                f"{_lut_sites(ch.estimate, device.family):,} LUT4-eq, {ch.estimate['bram']} BRAM)")

    def refuse(why: str):
        best = _fastest(cands, fits, exact_ii)
        tail = (f"the fastest configuration found runs {describe(choice(best[1], best[0]))}" if best else
                f"no folded configuration fits {device.name}")
        raise UserError(f"--target-fps {_num(target_fps)} cannot be met on {device.name}{why}: {tail}; "
                        f"lower the target or choose a larger device")

    floor_specs = _timing_specs(items, [1] * len(binaries)) + [{"kind": "argmax", "classes": classes}]
    if bottleneck_cycles(floor_specs, beats) > budget:
        refuse(f" (no configuration takes fewer than {bottleneck_cycles(floor_specs, beats):,} cycles per image, "
               f"the target allows {budget:,})")
    lists = [[c for c in layer if c["busy"] <= budget] for layer in cands]
    if not all(lists):
        refuse("")
    # best-first over the per-layer lists (each sorted by LUT4-eq): the first feasible combination is the cheapest
    lists = [sorted(layer, key=lambda c: (c["lut"], c["bram"], c["ffs"], c["walk"])) for layer in lists]

    def key(idx):
        combo = [lists[k][i] for k, i in enumerate(idx)]
        return (sum(c["lut"] for c in combo), sum(c["bram"] for c in combo), idx)

    start = tuple(0 for _ in lists)
    heap, seen = [key(start)], {start}
    while heap:
        _, _, idx = heapq.heappop(heap)
        combo = [lists[k][i] for k, i in enumerate(idx)]
        if fits(combo):
            if len(ii_cache) >= max_evaluations and tuple(c["walk"] for c in combo) not in ii_cache:
                raise UserError(f"--target-fps {_num(target_fps)} on {device.name}: the search evaluated {max_evaluations} "
                                "candidate configurations without finishing; give --simd/--gather instead")
            ii = exact_ii(tuple(c["walk"] for c in combo))
            if ii <= budget:
                return choice(combo, ii)
        for k in range(len(idx)):
            if idx[k] + 1 < len(lists[k]):
                nxt = idx[:k] + (idx[k] + 1,) + idx[k + 1:]
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, key(nxt))
    refuse("")


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,g}"


def _fastest(cands, fits, exact_ii):
    """(II, combo) of the fastest configuration found that fits (the per-layer fastest, relaxed greedily), or None.

    Starts from every layer's fewest-cycle candidate; while that does not fit,
    the layer whose next-slower candidate saves the most LUT4-eq steps back.
    Not an exhaustive search: the refusal says "found".
    """
    order = [sorted(layer, key=lambda c: (c["walk"], c["lut"], c["bram"])) for layer in cands]
    idx = [0] * len(order)
    while True:
        combo = [order[k][i] for k, i in enumerate(idx)]
        if fits(combo):
            return exact_ii(tuple(c["walk"] for c in combo)), combo
        # saving of stepping layer k back, block RAM weighted as 64 LUT4-eq; ties: the earliest layer
        steps = [(combo[k]["lut"] + 64 * combo[k]["bram"] - order[k][idx[k] + 1]["lut"] - 64 * order[k][idx[k] + 1]["bram"],
                  -k) for k in range(len(idx)) if idx[k] + 1 < len(order[k])]
        if not steps:
            return None
        layer = -max(steps)[1]
        idx[layer] += 1
