"""``mstbnn verilog DIR [--baseline] [--engine unrolled|folded]``: Verilog for a compiled artefact."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "verilog",
        help="generate an engine's Verilog (unrolled streaming or folded) for a compiled network",
        description=(
            "Write DIR/rtl/mstbnn_top.v and the engine spec DIR/rtl/mstbnn_top.json (ports, latency, II, estimates, "
            "every generator option, the network's digest; every later step builds this engine from it) "
            "for the compiled network in DIR; with --baseline, the plain engine (no reuse) into DIR/rtl-baseline/. "
            "--engine folded writes the schedule-driven folded engine into DIR/rtl-folded[-baseline]/."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="compiled artefact directory (from `mstbnn compile`)")
    p.add_argument("--baseline", action="store_true", help="every channel a full XNOR-popcount (no reuse)")
    p.add_argument("--engine", choices=("unrolled", "folded"), default="unrolled",
                   help="unrolled: weights in logic, one vector per clock (default); folded: weights in block RAM, "
                        "the schedule walked S bits / G positions per cycle")
    p.add_argument("--simd", type=int, default=None, metavar="S",
                   help="folded: XNOR-popcount width S per cycle (default min(N, 32))")
    p.add_argument("--gather", type=int, default=None, metavar="G",
                   help="folded: differing positions G gathered per cycle (default 2)")
    p.add_argument("--device", default=None, metavar="D",
                   help="folded: choose S and G per layer for device D's LUT and block-RAM budget (the choice is "
                        "recorded in the engine spec, so `synth` builds the same engine)")
    p.add_argument("--target-fps", type=float, default=None, metavar="F",
                   help="folded, with --device: the smallest configuration (S, G, trees per layer) that meets F "
                        "images/s at the device's expected folded-engine clock (exact cycle model); refused, with "
                        "the best figure, when D cannot")
    p.add_argument("--adder-levels-per-stage", type=int, default=2, help="popcount-tree adder levels per register (default 2)")
    p.add_argument("--tree-levels-per-stage", type=int, default=1, help="reuse-tree levels per pipeline stage (default 1)")
    p.add_argument("--corrections", choices=("auto", "early", "late", "inline"), default="auto",
                   help="where child corrections are computed (default auto: fewer flip-flops)")
    p.set_defaults(func=_verilog)


def _check_verilog_args(args: argparse.Namespace) -> None:
    """Every ``verilog`` option, before the artefact is read."""
    from mstbnn import checks
    from mstbnn.errors import UserError

    checks.integer("--adder-levels-per-stage", args.adder_levels_per_stage, minimum=1)
    checks.integer("--tree-levels-per-stage", args.tree_levels_per_stage, minimum=1)
    checks.integer("--simd", args.simd, minimum=1, why="XNOR-popcount bits per cycle")
    checks.integer("--gather", args.gather, minimum=1, why="positions gathered per cycle")
    if args.engine != "folded" and (args.simd is not None or args.gather is not None or args.target_fps is not None):
        raise UserError("--simd, --gather and --target-fps apply to --engine folded only")
    if args.target_fps is not None:
        if args.simd is not None or args.gather is not None:
            raise UserError("give either --target-fps (S and G chosen to meet it) or --simd/--gather, not both")
        if args.device is None:
            raise UserError("--target-fps needs --device D: images/s depend on the device's clock and size")
        if not args.target_fps > 0 or args.target_fps == float("inf"):
            raise UserError(f"--target-fps {args.target_fps:g}: give a positive number of images per second")
    if args.engine == "folded":
        if (args.adder_levels_per_stage, args.tree_levels_per_stage, args.corrections) != (2, 1, "auto"):
            raise UserError("--adder-levels-per-stage, --tree-levels-per-stage and --corrections apply to the "
                            "unrolled engine only")
        if args.device is not None and (args.simd is not None or args.gather is not None):
            raise UserError("give either --device (S and G chosen for it) or --simd/--gather, not both")


def spec_from_args(args: argparse.Namespace, net):
    """The engine spec the ``verilog`` flags ask for, and the device (or None)."""
    from mstbnn.hw.spec import EngineSpec

    device = None
    if args.device is not None:
        from mstbnn.devices import get_device

        device = get_device(args.device)
    if args.engine == "folded":
        options = {}
        if args.target_fps is not None:
            options["target_fps"] = args.target_fps
        if args.simd is not None or args.gather is not None:
            simd = 32 if args.simd is None else args.simd
            gather = 2 if args.gather is None else args.gather
            options["config"] = [[min(layer.fan_in, simd), gather] for _, layer in net.binary_layers()]
        return EngineSpec("folded", not args.baseline, options), device
    options = {
        "adder_levels_per_stage": args.adder_levels_per_stage,
        "tree_levels_per_stage": args.tree_levels_per_stage,
        "corrections": args.corrections,
    }
    return EngineSpec("unrolled", not args.baseline, options), device


def _verilog(args: argparse.Namespace) -> int:
    from mstbnn.compiler.io import load
    from mstbnn.hw.spec import generate

    _check_verilog_args(args)
    net = load(args.dir)
    spec, device = spec_from_args(args, net)
    path = generate(args.dir, spec, device=device, net=net)
    if "target_fps" in spec.options:
        print(target_summary(path))
    print(path)
    return 0


def target_summary(verilog) -> str:
    """One line on the engine a throughput target chose, from its spec beside ``verilog``."""
    import json

    from mstbnn.devices import get_device

    desc = json.loads(verilog.with_suffix(".json").read_text())
    family = get_device(desc["device"]).family
    opts, est = desc["options"], desc["estimate"][family]
    fmax, ii = opts["expected_fmax_mhz"], desc["initiation_interval"]
    lut4eq = est["luts"] + (2 * est["carry"] if family == "ecp5" else 0)  # LUT sites, the boards report's
    config = ", ".join(f"{s}/{g}" for s, g in opts["config"])
    return (f"target {opts['target_fps']:,.0f} images/s on {desc['device']}: II {ii:,} cycles = "
            f"{fmax * 1e6 / ii:,.0f} images/s at the expected {fmax:g} MHz (an assumption until placed); "
            f"S/G per layer {config}; estimated {lut4eq:,} LUT4-eq, {est['bram']} BRAM")
