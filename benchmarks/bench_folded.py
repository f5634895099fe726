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

``--mnist``: FINN's SFC- and LFC-shaped mlps (784-256-256-256-10 and
784-1024-1024-1024-10) trained on mnist5k (default MST lambda, and lambda 0
for the accuracy of plain training), then

- ``targets``: for each ``--targets-sfc`` / ``--targets-lfc`` images/s, the
  configuration ``--target-fps`` picks on ``--device`` for the MST (reuse)
  engine and for the plain engine of the same network (estimate, expected
  clock), with the LUT4-eq and block-RAM ratios;
- ``placed``: each ``--place NET:ENGINE:FPS`` point generated with
  ``mstbnn verilog --target-fps``, simulated bit-exact in Verilator on the
  whole mnist5k test set plus ``--vectors`` random images (``mstbnn sim``),
  synthesised and placed (``mstbnn synth``, ``--timeout`` seconds), with
  FINN's published figures beside them.

Each point lives in its own copy of the compiled network under ``--work``
(one generated engine per directory); a run already recorded for the same
engine spec is read back, not repeated (``--no-synth``: rows from recorded
runs only)::

    nice .venv/bin/python benchmarks/bench_folded.py --mnist [--place sfc:reuse:100000,...] [--timeout 3600]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

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
from mstbnn.hw.folded.estimate import _lut_sites, bram_blocks, choose_config, estimate_network

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


# --- MNIST-class mlps: FINN's SFC and LFC shapes on mnist5k ----------------------------------------

MNIST_NETS = {"sfc": (256, 256, 256), "lfc": (1024, 1024, 1024)}
# Published, not measured here: BNN-PYNQ's LFC-W1A1 on a PYNQ-Z1 (Zynq-7020, 6-input LUTs, Vivado)
# and FINN's SFC-max (ISFPGA 2017). Different vendor, LUT size and tools: context, not a like-for-like row.
FINN_ROWS = (
    {"network": "LFC-W1A1 on a PYNQ-Z1 (BNN-PYNQ)", "luts": "28,360 LUT6", "bram": "110 tiles", "fps": 356633,
     "accuracy": "98.4 % (full MNIST)"},
    {"network": "SFC-max (FINN, ISFPGA 2017)", "luts": "91k LUT6", "bram": None, "fps": None, "accuracy": None},
)


def _mstbnn(argv: list[str]) -> int:
    from mstbnn.cli import main as mstbnn_main
    return mstbnn_main([str(a) for a in argv])


def mnist_network(work: Path, name: str, lam: float, epochs: int, seed: int) -> Path:
    """Train (mnist5k) and compile one mlp of MNIST_NETS, once: the compiled artefact directory."""
    art = work / f"{name}-lambda{lam:g}"
    if not (art / "network.json").is_file():
        hidden = ",".join(str(w) for w in MNIST_NETS[name])
        model = work / f"{art.name}.pt"
        if _mstbnn(["train", "--model", "mlp", "--dataset", "mnist5k", "--hidden", hidden, "--mst-lambda", f"{lam:g}",
                    "--epochs", epochs, "--seed", seed, "--quiet", "-o", model]) != 0:
            sys.exit(f"bench_folded: training {art.name} failed")
        if _mstbnn(["compile", model, "-o", art]) != 0:
            sys.exit(f"bench_folded: compiling {art.name} failed")
    return art


def golden_accuracy(art: Path) -> float:
    from mstbnn.compiler.execute import run as execute
    from mstbnn.compiler.io import load
    net = load(art)
    with np.load(art / "testset.npz") as z:
        x, y = z["x"].reshape((-1, *net.input.shape)).astype(np.int64), z["y"]
    return float(np.mean(execute(net, x).classes == y))


def _refusal(exc: UserError) -> str:
    m = re.search(r"runs ([\d,]+) images/s", str(exc))
    return f"refused (best {m.group(1)} images/s)" if m else "refused"


def _choice_cell(ch, family: str) -> dict:
    e = ch.estimate
    return {"ii": ch.ii, "lut": _lut_sites(e, family), "bram": e["bram"], "ffs": e["ffs"],
            "config": [list(c) for c in ch.config], "trees": list(ch.trees)}


def target_rows(art: Path, label: str, device, targets) -> list[dict]:
    """Per target: what --target-fps picks for the MST engine and for the plain engine of the same network."""
    from mstbnn.compiler.io import load
    from mstbnn.hw.folded.throughput import choose_for_target
    net = load(art)
    rows = []
    for fps in targets:
        row = {"network": label, "target": fps}
        for engine, reuse in (("reuse", True), ("plain", False)):
            t0 = time.monotonic()
            try:
                row[engine] = _choice_cell(choose_for_target(net, device, fps, reuse=reuse), device.family)
            except UserError as exc:
                row[engine] = {"refused": _refusal(exc)}
            print(f"  {label} {fps:,.0f} images/s {engine}: {row[engine]} ({time.monotonic() - t0:.0f} s)", flush=True)
        rows.append(row)
    return rows


def _point_dir(work: Path, art: Path, fps: float) -> Path:
    """A copy of the compiled network for one target (one generated engine per directory and engine kind)."""
    from mstbnn.artefact import HEADER
    d = work / "points" / f"{art.name}-fps{fps:g}"
    if not (d / HEADER).is_file():
        d.mkdir(parents=True, exist_ok=True)
        for f in sorted(art.glob("*.npz")):
            shutil.copy2(f, d / f.name)
        shutil.copy2(art / HEADER, d / HEADER)  # last: its presence says the copy is whole
    return d


def smallest_device(art: Path, family: str, engine: str, fps: float) -> str | None:
    """The smallest device of the family on which --target-fps finds a configuration (by estimate)."""
    from mstbnn.compiler.io import load
    from mstbnn.devices import DEVICES
    from mstbnn.hw.folded.throughput import choose_for_target
    net = load(art)
    for dev in sorted((d for d in DEVICES.values() if d.family == family), key=lambda d: d.luts):
        try:
            choose_for_target(net, dev, fps, reuse=engine != "baseline")
            return dev.name
        except UserError:
            continue
    return None


def place_point(work: Path, art: Path, label: str, engine: str, fps: float, device, vectors: int,
                timeout: float, synth: bool = True) -> dict:
    """Generate (--target-fps), simulate bit-exact, synthesise and place one point; the placed table's row."""
    from mstbnn.artefact import SYNTH_REPORT, result_path, spec_path
    from mstbnn.boards.cli import report_key, synth_network
    from mstbnn.boards.synth import SynthTimeout, read_reports
    from mstbnn.hw.spec import load_spec

    baseline = engine == "baseline"
    d = _point_dir(work, art, fps)
    flags = ["--engine", "folded"] + (["--baseline"] if baseline else [])
    row = {"network": label, "engine": "MST (reuse)" if not baseline else "plain", "target": fps}
    spec_file = spec_path(d, baseline, "folded")
    spec = load_spec(d, baseline=baseline, engine="folded")[0] if spec_file.is_file() else None
    if spec is None or spec.options.get("target_fps") != fps or spec.device != device.name:
        if _mstbnn(["verilog", d, *flags, "--device", device.name, "--target-fps", f"{fps:g}"]) != 0:
            row["status"] = "refused by --target-fps (see the line above)"
            return row
        spec = load_spec(d, baseline=baseline, engine="folded")[0]
    row["config"] = "; ".join(f"{s}/{g}" for s, g in spec.options["config"])
    row["smallest"] = smallest_device(d, device.family, engine, fps)
    sim_file = result_path(d, "sim", baseline, "folded")
    if not sim_file.is_file() or sim_file.stat().st_mtime < spec_file.stat().st_mtime:
        _mstbnn(["sim", d, *flags, "--vectors", vectors])
    sim = json.loads(sim_file.read_text())
    row.update(bit_exact=[sim["bit_exact"], sim["vectors"]], hw_accuracy=100 * sim["test_accuracy"])
    if not sim["ok"]:  # a mismatch or a cycle-model miss is a bug to find, not a point to place
        row["status"] = f"SIMULATION FAILED ({sim_file})"
        return row
    key = report_key(device.name, baseline, True, "folded")
    report = read_reports(d / SYNTH_REPORT).get(key)
    if report is not None and report.get("spec") != spec.fields():
        report = None  # a run of another engine spec
    if report is None and synth:
        try:
            report = synth_network(d, device.name, baseline=baseline, engine="folded", target_fps=fps, timeout=timeout)
        except SynthTimeout as stopped:
            print(f"  stopped: {stopped}", flush=True)
            report = read_reports(d / SYNTH_REPORT).get(key)
    if report is None:
        row["status"] = "not placed (no recorded run)"
        return row
    res = report["resources"]
    row.update(lut=res["lut"]["used"], ff=res["ff"]["used"], bram=res["bram"]["used"], fmax=report.get("fmax_mhz"),
               ii=report["initiation_interval"], fps=report.get("throughput_per_s"),
               latency_us=report["latency_ns"] / 1e3 if report.get("latency_ns") else None,
               yosys_s=report.get("seconds", {}).get("yosys"), nextpnr_s=report.get("seconds", {}).get("nextpnr"))
    if report.get("stopped"):
        row["status"] = f"nextpnr stopped after {report['stopped']['after_s']:.0f} s"
    elif row["fps"]:
        row["status"] = "met" if row["fps"] >= fps else "MISSED"
    return row


def _engine_cell(c: dict) -> str:
    if "refused" in c:
        return c["refused"]
    return f"II {c['ii']:,}, {c['lut']:,} LUT4-eq, {c['bram']} BRAM"


def mnist_tables(nets: list[dict], targets: list[dict], placed: list[dict]) -> tuple[Table, Table, Table, Table]:
    nets_t = Table([Column("network", "network"), Column("lam", "MST lambda", "right", "{:g}"),
                    Column("acc", "test accuracy (golden)", "right", "{:.1f} %"),
                    Column("xnor", "XNOR ratio", "right", "{:.1f}x"),
                    Column("bits", "weight bits: plain / stream of the XNOR tree", fmt="{0:,} / {1:,}")])
    for n in nets:
        nets_t.add(**n)
    tgt = Table([Column("network", "network"), Column("target", "target images/s", "right", "{:,.0f}"),
                 Column("reuse", "MST engine"), Column("plain", "plain engine (same network)"),
                 Column("lut_ratio", "LUT4-eq plain / MST", "right", "{:.2f}x"),
                 Column("bram_ratio", "BRAM plain / MST", "right", "{:.2f}x")])
    for r in targets:
        both = "refused" not in r["reuse"] and "refused" not in r["plain"]
        tgt.add(network=r["network"], target=r["target"], reuse=_engine_cell(r["reuse"]), plain=_engine_cell(r["plain"]),
                lut_ratio=r["plain"]["lut"] / r["reuse"]["lut"] if both else None,
                bram_ratio=r["plain"]["bram"] / r["reuse"]["bram"] if both and r["reuse"]["bram"] else None)
    pl = Table([Column("network", "network"), Column("engine", "engine"),
                Column("target", "target images/s", "right", "{:,.0f}"), Column("config", "S/G per layer"),
                Column("lut", "LUT sites", "right", "{:,}"), Column("ff", "FF", "right", "{:,}"),
                Column("bram", "DP16KD", "right"), Column("fmax", "Fmax MHz", "right", "{:.1f}"),
                Column("ii", "II cycles", "right", "{:,}"), Column("fps", "images/s (Fmax / II)", "right", "{:,.0f}"),
                Column("status", "target"), Column("smallest", "smallest ECP5 (estimate)"),
                Column("latency_us", "latency us", "right", "{:.1f}"),
                Column("bit_exact", "bit-exact (test set + random)", "right", "{0:,} / {1:,}"),
                Column("hw_accuracy", "hw test accuracy", "right", "{:.1f} %"),
                Column("yosys_s", "yosys s", "right", "{:.0f}"), Column("nextpnr_s", "nextpnr s", "right", "{:.0f}")])
    short = Table([Column("network", "network"), Column("engine", "engine"),
                   Column("target", "target images/s", "right", "{:,.0f}"), Column("lut", "LUT sites", "right", "{:,}"),
                   Column("bram", "DP16KD", "right"), Column("fmax", "Fmax MHz", "right", "{:.1f}"),
                   Column("fps", "images/s placed", "right", "{:,.0f}"), Column("status", "target"),
                   Column("bit_exact", "bit-exact", "right", "{0:,} / {1:,}")])
    for r in placed:
        pl.add(**r)
        short.add(**{k: r.get(k) for k in ("network", "engine", "target", "lut", "bram", "fmax", "fps", "status",
                                            "bit_exact")})
    return nets_t, tgt, pl, short


def finn_table() -> Table:
    t = Table([Column("network", "FINN (published, not measured here)"), Column("luts", "LUTs"),
               Column("bram", "BRAM"), Column("fps", "images/s", "right", "{:,}"), Column("accuracy", "accuracy")])
    for f in FINN_ROWS:
        t.add(**f)
    return t


def _numbers(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def mnist_main(args, argv) -> int:
    from mstbnn.compiler.cost import network_cost
    from mstbnn.compiler.io import load

    record = Recorder(args.record if args.record is not None else "folded_mnist", __file__, argv)
    device = get_device(args.device)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    nets, arts = [], {}
    for name in MNIST_NETS:
        for lam in (args.mst_lambda, 0.0):
            art = mnist_network(work, name, lam, args.epochs, args.seed)
            net = load(art)
            cost = network_cost(net)
            stats = json.loads((art / "network.json").read_text())["stats"]["layers"]
            label = f"{name.upper()} 784-{'-'.join(str(w) for w in MNIST_NETS[name])}-10"
            nets.append({"network": label, "lam": lam, "acc": 100 * golden_accuracy(art), "xnor": cost["xnor_ratio"],
                         "bits": [sum(s["storage_plain_bits"] for s in stats), sum(s["storage_reuse_bits"] for s in stats)]})
            arts[name, lam] = (art, f"{label}, lambda {lam:g}")
            print(f"bench_folded: {art.name}: {nets[-1]}", flush=True)
    targets = []
    for name, fps_list in (("sfc", args.targets_sfc), ("lfc", args.targets_lfc)):
        art, label = arts[name, args.mst_lambda]
        targets += target_rows(art, label, device, _numbers(fps_list))
    placed = []
    for point in [p for p in args.place.split(",") if p]:
        name, engine, fps = point.split(":")
        art, label = arts[name, args.mst_lambda]
        print(f"bench_folded: placing {label} {engine} at {float(fps):,.0f} images/s", flush=True)
        placed.append(place_point(work, art, label, engine, float(fps), device, args.vectors, args.timeout,
                                  synth=not args.no_synth))
        print(f"  {placed[-1]}", flush=True)
    nets_t, tgt_t, pl_t, short_t = mnist_tables(nets, targets, placed)
    for key, table in (("nets", nets_t), ("targets", tgt_t), ("placed", pl_t), ("readme", short_t),
                       ("finn", finn_table())):
        record.add(key, table)
        print(render_table(table) + "\n")
    record.data = {"device": device.name, "targets": targets, "placed": placed}
    record.write()
    return 0


def main(argv=None) -> int:
    from mstbnn.boards.synth import DEFAULT_TIMEOUT_S

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="ecp5-85k")
    ap.add_argument("--fmax", type=float, default=40.0, help="MHz used for images/s (default: measured on a small folded design)")
    ap.add_argument("--weights", default="uniform,clustered-5%,clustered-1%")
    ap.add_argument("--json", default=None)
    mn = ap.add_argument_group("--mnist: SFC and LFC on mnist5k")
    mn.add_argument("--mnist", action="store_true", help="the SFC / LFC part instead of vgg_small")
    mn.add_argument("--work", default="build/bench_folded", help="trained networks and points (default %(default)s)")
    mn.add_argument("--epochs", type=int, default=20)
    mn.add_argument("--seed", type=int, default=0)
    mn.add_argument("--mst-lambda", type=float, default=8.0, help="lambda of the MST networks (default %(default)s)")
    mn.add_argument("--targets-sfc", default="10000,25000,50000,87000,100000")
    mn.add_argument("--targets-lfc", default="3000,10000,25000")
    mn.add_argument("--place", default="sfc:reuse:100000,sfc:baseline:100000,sfc:reuse:50000,sfc:baseline:50000,"
                                        "lfc:reuse:25000,lfc:baseline:3000",
                    help="NET:ENGINE:FPS points to place (comma-separated; ENGINE reuse or baseline)")
    mn.add_argument("--vectors", type=int, default=1000, help="random images after the test set in each simulation")
    mn.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds of yosys + nextpnr per point")
    mn.add_argument("--no-synth", action="store_true", help="placed rows from recorded runs only (no yosys / nextpnr)")
    add_record_argument(ap, None)
    args = ap.parse_args(argv)
    if args.mnist:
        return mnist_main(args, argv)
    record = Recorder(args.record if args.record is not None else "folded", __file__, argv)
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
