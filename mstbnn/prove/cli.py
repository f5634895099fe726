"""``mstbnn prove DIR [--baseline] [--engine unrolled|folded]``: a formal proof that the engine computes the network."""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["add_commands", "prove_directory"]


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "prove",
        help="prove, for every input, that the generated engine's scores and class equal the network's",
        description=(
            "Export DIR/rtl/mstbnn_top.v (DIR/rtl-baseline with --baseline) to a netlist with yosys, evaluate it "
            "symbolically (every word an exact linear form over the input bits, every compare an atom) and compare "
            "it with the compiled network: each hidden output bit must be the network's threshold compare, each "
            "score its exact sum, the class the lowest-index argmax, all at the spec's latency. Names the first "
            "layer and channel that differ, or says why a part is NOT PROVEN. Writes DIR/prove.json "
            "(DIR/prove-baseline.json). Exit 0 proven, 1 differs or not proven, 2 bad input."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="compiled artefact directory, after `mstbnn verilog DIR`")
    p.add_argument("--baseline", action="store_true", help="prove the no-reuse baseline in DIR/rtl-baseline")
    p.add_argument("--engine", choices=("unrolled", "folded"), default="unrolled",
                   help="which engine (default unrolled; the folded engine is not covered yet and is reported NOT PROVEN)")
    p.set_defaults(func=_prove)


def _load_inputs(directory, baseline: bool, engine: str):
    """The network, the engine spec and the Verilog path; UserError (exit 2) for a missing, stale or incomplete one."""
    from mstbnn import artefact
    from mstbnn.hw.spec import load_spec

    spec, net, desc = load_spec(directory, baseline=baseline, engine=engine, step="`mstbnn prove`")
    return net, desc, artefact.verilog_path(directory, baseline, engine), spec.network_sha256


def prove_directory(directory, baseline: bool = False, engine: str = "unrolled", stream=None) -> dict:
    """Prove the engine in ``directory``; write and return the report."""
    from mstbnn import artefact
    from mstbnn.prove.compare import NOT_PROVEN, prove_netlist
    from mstbnn.prove.netlist import Netlist, export_json

    stream = sys.stderr if stream is None else stream

    def say(msg):
        print(f"  prove: {msg}", file=stream, flush=True)

    net, desc, vpath, digest = _load_inputs(directory, baseline, engine)
    start = time.monotonic()
    if engine == "folded":
        report = {"verdict": NOT_PROVEN, "proven": False, "layers": [],
                  "message": "the folded engine is not covered by mstbnn prove: its datapath walks the schedule over "
                             "many cycles through block RAM, which the steady-state symbolic evaluation does not model; "
                             "its check is `mstbnn sim --engine folded`"}
    elif any(layer.kind in ("conv2d", "maxpool") for layer in net.layers):
        report = {"verdict": NOT_PROVEN, "proven": False, "layers": [],
                  "message": "conv networks are not covered by mstbnn prove yet: the window generator, collector and "
                             "pool keep state across pixels; prove covers dense networks end to end"}
    else:
        data, export_s = export_json(vpath, stream=stream)
        netlist = Netlist(data)
        report = prove_netlist(netlist, net, desc, progress=say)
        report["times"]["export_s"] = round(export_s, 3)
    report["times"] = dict(report.get("times", {}), total_s=round(time.monotonic() - start, 3))
    report = dict(report, engine=engine, baseline=bool(baseline), network_sha256=digest,
                  verilog=str(vpath.relative_to(directory)) if vpath.is_relative_to(directory) else str(vpath))
    artefact.atomic_write(artefact.result_path(directory, "prove", baseline, engine),
                          json.dumps(report, indent=1, sort_keys=True) + "\n")
    return report


def _prove(args: argparse.Namespace) -> int:
    report = prove_directory(args.dir, baseline=args.baseline, engine=args.engine)
    from mstbnn import artefact

    out = artefact.result_path(args.dir, "prove", args.baseline, args.engine)
    if report["proven"]:
        times = report["times"]
        print(f"PROVEN: {report['message']} ({len(report['layers'])} binary layers, latency {report['latency']}, "
              f"export {times.get('export_s', 0):.1f} s, proof {times.get('evaluate_s', 0) + times.get('compare_s', 0) + times.get('specify_s', 0):.1f} s)")
        stall = report.get("stall", {})
        if stall:
            print("stall argument: " + ("every stage's registers share one enable" if stall["one_enable_per_stage"]
                                         else "some stage's registers use several enables (see " + str(out) + ")"))
    else:
        print(f"{report['verdict']}: {report['message']}")
    print(f"report: {out}")
    return 0 if report["proven"] else 1
