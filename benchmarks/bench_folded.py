"""vgg_small (CIFAR-10 shaped) on the folded engine: fit, storage, cycles per image, throughput.

Random weights (no training here), three kinds:

- ``uniform``: independent random bits, the worst case for MST reuse;
- ``clustered-5%``: channels scattered 5 % around a few prototypes
  (:func:`mstbnn.compiler.random.similar_weights`, the test default);
- ``clustered-1%``: 1 % scatter, a stand-in for weights trained with the MST
  regulariser (which reached 20-40x XNOR reduction on an MLP).

For each: the XNOR ratio of the MST schedule, the stored bits of the plain
store, of the XNOR-weighted MST store and of the storage-weighted forest, and
the engine chosen by :func:`mstbnn.hw.folded.estimate.choose_config` for the
device (reuse and plain baseline): estimated LUTs / FFs / BRAMs, fit, cycles
per image (steady-state bound), and images/s at the given Fmax.

Run::

    .venv/bin/python benchmarks/bench_folded.py [--device ecp5-85k] [--fmax 40] [--json out.json]

The Fmax default is the one measured by nextpnr on a small folded design
(docs/folded.md); vgg_small itself was not placed and routed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

import numpy as np

from _record import Column, Recorder, Table, add_record_argument, render_table

from mstbnn.devices import get_device
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.cost import network_cost, storage_bits
from mstbnn.compiler.mst import build_schedule
from mstbnn.compiler.random import random_conv_network, similar_weights
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.storage import storage_edge_cost
from mstbnn.errors import UserError
from mstbnn.hw.folded.estimate import bram_blocks, choose_config, estimate_network

VGG_CONVS = ((128, 3, 1, 1, False), (128, 3, 1, 1, True), (256, 3, 1, 1, False),
             (256, 3, 1, 1, True), (512, 3, 1, 1, False), (512, 3, 1, 1, True))


def vgg_small(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    net = random_conv_network(rng, (3, 32, 32), VGG_CONVS, classes=10, input_mode="int", bits=8,
                              clustered=False, sample=2)
    if kind.startswith("clustered"):
        flip = float(kind.split("-")[1].rstrip("%")) / 100
        for _, layer in net.binary_layers():
            c = layer.out_channels
            layer.weights = similar_weights(rng, c, layer.fan_in, flip=flip).reshape(layer.weights.shape)
    return net


def stream_brams(net, family: str, schedules) -> int:
    """DP16KD blocks for the weight streams alone (64-bit words, the engine's typical M)."""
    total = 0
    for (_, layer), sched in zip(net.binary_layers(), schedules):
        bits = storage_bits(sched, layer.fan_in)
        total += bram_blocks(64, -(-bits // 64) + 4, family)
    return total


def run(kind: str, device, fmax: float) -> dict:
    t0 = time.time()
    net = schedule_network(vgg_small(kind))
    cost = network_cost(net)
    layers = net.binary_layers()
    plain_scheds = [Schedule.plain(l.out_channels) for _, l in layers]
    mst_scheds = [l.schedule for _, l in layers]
    store_scheds = [build_schedule(l.weight_matrix.astype(bool), edge_cost=storage_edge_cost(l.fan_in, l.out_channels))
                    for _, l in layers]
    out = {
        "weights": kind,
        "xnor_ratio": round(cost["xnor_ratio"], 3),
        "storage_bits": {
            "plain": sum(l.out_channels * l.fan_in for _, l in layers),
            "mst_xnor_tree": sum(storage_bits(s, l.fan_in) for s, (_, l) in zip(mst_scheds, layers)),
            "mst_storage_forest": sum(storage_bits(s, l.fan_in) for s, (_, l) in zip(store_scheds, layers)),
        },
        "weight_brams": {
            "plain": stream_brams(net, device.family, plain_scheds),
            "mst_xnor_tree": stream_brams(net, device.family, mst_scheds),
            "mst_storage_forest": stream_brams(net, device.family, store_scheds),
        },
        "device": device.name,
        "device_bram": device.bram,
    }
    engines = {}
    for name, reuse, schedules in (("reuse", True, mst_scheds), ("reuse-storage-forest", True, store_scheds),
                                   ("baseline", False, plain_scheds)):
        trial = schedule_network(vgg_small(kind))
        for (_, layer), sched in zip(trial.binary_layers(), schedules):
            layer.schedule = sched
        smallest = estimate_network(trial, reuse=reuse, config=(8, 1), family=device.family)
        entry = {"smallest_config": {k: smallest[k] for k in ("luts", "carry", "ffs", "bram")}}
        try:
            _, cfg, est = choose_config(trial, device, reuse=reuse, retree=name == "reuse")
            cycles = est["image_cycles"]
            entry.update(fits=True, config=[list(c) for c in cfg],
                         estimate={k: est[k] for k in ("luts", "carry", "ffs", "bram")},
                         lut_sites=est["luts"] + 2 * est["carry"],
                         storage_bits=est["storage_bits"], image_cycles=cycles,
                         images_per_s=round(fmax * 1e6 / cycles, 2))
        except UserError as exc:
            entry.update(fits=False, reason=str(exc))
        engines[name] = entry
    out["engines"] = engines
    out["seconds"] = round(time.time() - t0, 1)
    return out


KINDS = {"uniform": "uniform random", "clustered-5%": "clustered 5 %", "clustered-1%": "clustered 1 %"}


def engine_cell(entry: dict, device, fmax: float) -> str:
    if not entry["fits"]:
        m = re.search(r"([\d,]+) BRAMs / (\d+)", entry["reason"])
        over = m and int(m.group(1).replace(",", "")) > int(m.group(2))
        return f"does not fit ({m.group(1)} BRAM > {m.group(2)})" if over else "does not fit"
    est = entry["estimate"]
    return (f"**fits**: {entry['lut_sites'] / 1e3:.1f}k LUT sites, {est['ffs'] / 1e3:.1f}k FF, {est['bram']} BRAM; "
            f"{entry['image_cycles']:,} cycles/image, **{entry['images_per_s']:.1f} images/s** at {fmax:g} MHz")


def tables(results: list[dict], device, fmax: float) -> tuple[Table, Table]:
    """The docs' table (every storage variant) and the README's (plain and storage forest only)."""
    full = Table([Column("weights", "weights"), Column("ratio", "XNOR ratio (MST)", "right", "{:.3g}x"),
                  Column("bits", "stored bits: plain / XNOR tree / storage forest", fmt="{0:.3g} M / {1:.3g} M / {2:.3g} M"),
                  Column("brams", "weight BRAMs: plain / XNOR tree / storage forest", fmt="{0} / {1} / {2}"),
                  Column("baseline", "baseline engine"), Column("reuse", "reuse engine")])
    short = Table([Column("weights", "weights"), Column("ratio", "XNOR ratio", "right", "{:.3g}x"),
                   Column("bits", "stored bits: plain / storage forest", fmt="{0:.3g} M / {1:.3g} M"),
                   Column("baseline", "baseline engine"), Column("reuse", "reuse engine")])
    order = ("plain", "mst_xnor_tree", "mst_storage_forest")
    for r in results:
        bits = [r["storage_bits"][k] / 1e6 for k in order]
        cells = {"weights": KINDS.get(r["weights"], r["weights"]), "ratio": r["xnor_ratio"],
                 "baseline": engine_cell(r["engines"]["baseline"], device, fmax),
                 "reuse": engine_cell(r["engines"]["reuse"], device, fmax)}
        full.add(bits=bits, brams=[r["weight_brams"][k] for k in order], **cells)
        short.add(bits=[bits[0], bits[2]], **cells)
    return full, short


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="ecp5-85k")
    ap.add_argument("--fmax", type=float, default=40.0, help="MHz used for images/s (default: measured on a small folded design)")
    ap.add_argument("--weights", default="uniform,clustered-5%,clustered-1%")
    ap.add_argument("--json", default=None)
    add_record_argument(ap, "folded")
    args = ap.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    device = get_device(args.device)
    results = []
    for kind in args.weights.split(","):
        r = run(kind, device, args.fmax)
        results.append(r)
        print(json.dumps(r, indent=1), flush=True)
    data = {"fmax_mhz": args.fmax, "fmax_source": "nextpnr on a small folded design", "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    full, short = tables(results, device, args.fmax)
    record.add("vgg", full)
    record.add("readme", short)
    record.data = data
    print()
    print(render_table(full))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
