"""Place-and-route at MNIST scale: does nextpnr converge, how long, at what Fmax and I/O-fed rate.

Run (long: each placed run can take up to ``--timeout`` seconds; a skeleton for
issue 12 item 5, to be run with the mnist5k artefacts once they exist)::

    .venv/bin/python benchmarks/bench_scale.py --standin                 # 784-128-10 stand-in, ecp5-25k
    .venv/bin/python benchmarks/bench_scale.py --artefact build/m128 --artefact build/m256 \\
        --devices ecp5-25k ecp5-45k ecp5-85k --baseline
    .venv/bin/python benchmarks/bench_scale.py --standin --no-synth      # table from recorded runs only

Each run goes through ``mstbnn.boards.cli.synth_network`` (the fit check,
then yosys + nextpnr with ``--timeout``); a refused or stopped run is a row
saying so. The stand-in (``--standin``) is a random 784-128-10 network whose
weights cluster around 4 prototypes per layer with 1 % of bits flipped, 8-bit
thresholded inputs: about the size of the trained mnist5k reuse engine of
issue 12 (12.8 k estimated LUT4 sites). Rows come from each artefact's
synth.json, so runs already recorded are not repeated (``--resynth`` forces).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from _record import Recorder, add_record_argument, table_from_markdown

from mstbnn.artefact import SYNTH_REPORT
from mstbnn.boards.cli import report_key, synth_network
from mstbnn.boards.synth import DEFAULT_TIMEOUT_S, SynthTimeout, read_reports
from mstbnn.errors import UserError


def build_standin(directory: Path, hidden=(128,), features: int = 784, classes: int = 10, prototypes: int = 4,
                  flip: float = 0.01, seed: int = 0) -> Path:
    """The random clustered stand-in of an MNIST mlp (see the module docstring), compiled and saved."""
    from mstbnn.compiler import io
    from mstbnn.compiler import random as rnd
    from mstbnn.compiler.compile import schedule_network
    from mstbnn.compiler.ir import BinaryDense, Network

    if (directory / "network.json").is_file():
        return directory
    rng = np.random.default_rng(seed)

    def weights(c, n):
        protos = rng.integers(0, 2, size=(prototypes, n)).astype(bool)
        return protos[rng.integers(0, prototypes, size=c)] ^ (rng.random((c, n)) < flip)

    net = Network(layers=[rnd._input(rng, (features,), "threshold", 8, False)])
    sample = rnd.random_inputs(net, rng, 64)
    fan_in = features
    for width in hidden:
        net.layers.append(BinaryDense(weights=weights(width, fan_in)))
        rnd._append_threshold(net, rng, sample)
        fan_in = width
    net.layers.append(BinaryDense(weights=weights(classes, fan_in)))
    io.save(schedule_network(net), directory)
    return directory


def row(name: str, device: str, engine: str, run: dict | None, refused: str | None) -> str:
    """One markdown table row for a recorded run (or why there is none)."""
    if refused or run is None:
        return f"| {name} | {device} | {engine} | {'refused: ' + refused if refused else 'not run'} |" + " |" * 8
    r, s = run["resources"], run.get("seconds", {})
    stopped = run.get("stopped")
    if run.get("placed"):
        routed = "yes"
    else:
        routed = f"no (stopped after {stopped['after_s']:.0f} s)" if stopped else "not placed"
    fmax, per_ii, built = run.get("fmax_mhz"), run.get("throughput_per_s"), run.get("throughput_as_built_per_s")
    cells = [name, device, engine, f"{r['lut']['used']:,}", f"{r['ff']['used']:,}", str(s.get("yosys", "-")),
             str(s.get("nextpnr", "-")), routed, f"{fmax:.1f}" if fmax else "-",
             f"{per_ii / 1e6:.1f}" if per_ii else "-", f"{built:,.0f}" if built else "-"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("build/bench_scale"))
    p.add_argument("--artefact", type=Path, action="append", default=[], help="compiled artefact (repeatable)")
    p.add_argument("--standin", action="store_true", help="add the random 784-128-10 stand-in (built in WORK)")
    p.add_argument("--devices", nargs="+", default=["ecp5-25k"])
    p.add_argument("--baseline", action="store_true", help="also the plain engine")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per run (yosys + nextpnr)")
    p.add_argument("--no-synth", action="store_true", help="print the table from recorded runs only")
    p.add_argument("--resynth", action="store_true", help="run again even when a run is recorded")
    p.add_argument("--table", default="runs", help="table key in the record (default %(default)s)")
    add_record_argument(p, "scale")
    args = p.parse_args(argv)
    record = Recorder(args.record, __file__, argv)

    artefacts = list(args.artefact)
    if args.standin:
        artefacts.append(build_standin(args.work / "standin-784-128-10"))
    if not artefacts:
        p.error("give --artefact DIR and/or --standin")
    header = ("| network | device | engine | LUT4-eq | FF | yosys s | nextpnr s | routed | Fmax MHz | "
              "M inf/s (Fmax / II) | inf/s as built |")
    lines = [header, "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for art in artefacts:
        for device in args.devices:
            for baseline in ([False, True] if args.baseline else [False]):
                engine = "baseline" if baseline else "reuse"
                key = report_key(device, baseline)
                run, refused = read_reports(art / SYNTH_REPORT).get(key), None
                if not args.no_synth and (run is None or args.resynth):
                    print(f"bench_scale: {art} {device} {engine} (timeout {args.timeout:g} s)", flush=True)
                    try:
                        synth_network(art, device, baseline=baseline, timeout=args.timeout)
                    except SynthTimeout as stopped:
                        print(f"  stopped: {stopped}", flush=True)
                    except UserError as exc:
                        refused = str(exc)
                    run = read_reports(art / SYNTH_REPORT).get(key)
                lines.append(row(art.name, device, engine, run, refused))
    print("\n".join(lines))
    record.add(args.table, table_from_markdown(lines))
    record.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
