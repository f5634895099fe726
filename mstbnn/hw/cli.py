"""``mstbnn verilog DIR [--baseline]``: Verilog for a compiled artefact."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "verilog",
        help="generate the unrolled streaming engine's Verilog for a compiled network",
        description=(
            "Write DIR/rtl/mstbnn_top.v and DIR/rtl/mstbnn_top.json (ports, latency, II, estimates) "
            "for the compiled network in DIR; with --baseline, the plain engine (no reuse) into DIR/rtl-baseline/."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="compiled artefact directory (from `mstbnn compile`)")
    p.add_argument("--baseline", action="store_true", help="every channel a full XNOR-popcount (no reuse)")
    p.add_argument("--adder-levels-per-stage", type=int, default=2, help="popcount-tree adder levels per register (default 2)")
    p.add_argument("--tree-levels-per-stage", type=int, default=1, help="reuse-tree levels per pipeline stage (default 1)")
    p.add_argument("--corrections", choices=("auto", "early", "late", "inline"), default="auto",
                   help="where child corrections are computed (default auto: fewer flip-flops)")
    p.set_defaults(func=_verilog)


def _verilog(args: argparse.Namespace) -> int:
    from mstbnn.compiler.io import load
    from mstbnn.errors import UserError
    from mstbnn.hw.verilog import generate

    if args.adder_levels_per_stage < 1 or args.tree_levels_per_stage < 1:
        raise UserError("--adder-levels-per-stage and --tree-levels-per-stage must be at least 1")
    net = load(args.dir)
    path = generate(
        net,
        args.dir,
        reuse=not args.baseline,
        adder_levels_per_stage=args.adder_levels_per_stage,
        tree_levels_per_stage=args.tree_levels_per_stage,
        corrections=args.corrections,
    )
    print(path)
    return 0
