"""Commands that span stages: ``compile`` (a trained model or IR -> artefact) and ``demo``.

The stage packages only ever import downstream-to-upstream in one direction
(nn -> compiler -> hw -> sim, boards). Turning a torch checkpoint into an IR
needs nn, so the ``compile`` command lives here, above the stages.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mstbnn.artefact import TESTSET, read_testset, result_path
from mstbnn.errors import UserError

__all__ = ["load_model", "compile_model", "add_commands"]



def load_model(path, onnx_options: dict | None = None) -> tuple:
    """Read MODEL: a torch checkpoint (.pt), a QONNX model (.onnx) or an IR artefact (dir or network.json).

    Returns (network, testset) where testset is a dict with ``x`` and ``y``
    (raw integer inputs and labels) when the model records its dataset, else None.
    ``onnx_options`` go to :func:`mstbnn.compiler.qonnx_import.import_qonnx`
    (input mapping, test set); they are refused for any other model.
    """
    from mstbnn.compiler import io

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory; give a model.pt from `mstbnn train`, a QONNX .onnx "
                        "or a compiled artefact")
    options = {k: v for k, v in (onnx_options or {}).items() if v is not None}
    if path.suffix == ".onnx":
        from mstbnn.compiler.qonnx_import import import_qonnx

        return import_qonnx(path, **options)
    if options:
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise UserError(f"{flags}: only for a QONNX model (.onnx); {path} is not one")
    if path.suffix == ".pt":
        from mstbnn.nn.export import load_checkpoint, load_test_set

        return load_checkpoint(path), load_test_set(path)
    net = io.load(path)
    root = path if path.is_dir() else path.parent
    testset = None
    if (root / TESTSET).is_file():
        x, y = read_testset(root / TESTSET, net.input.shape, net.input.value_range)
        testset = {"x": x, "y": y}
    return net, testset


def compile_model(model, out_dir, *, reuse=True, max_depth=None, negation=False, cost=None, onnx_options=None,
                  log=print):
    """Schedule MODEL's binary layers and write the artefact to ``out_dir``.

    ``cost`` (``"xnor"`` or ``"luts"``, what the trees minimise) defaults to
    the training's, else ``"xnor"``. Returns the scheduled
    :class:`~mstbnn.compiler.ir.Network`.
    """
    import numpy as np

    from mstbnn.compiler import io
    from mstbnn.compiler.compile import schedule_network
    from mstbnn.compiler.cost import format_table, network_cost
    from mstbnn.compiler.execute import run

    from mstbnn.checks import writable_output

    if max_depth is not None and max_depth < 0:
        raise UserError(f"--max-depth must be >= 0, got {max_depth}")
    writable_output("-o", out_dir, directory=True)
    net, testset = load_model(model, onnx_options)
    source = (net.meta or {}).get("source") or {}
    if source.get("format") == "qonnx" and "validated_inputs" in source:
        ties = source.get("float_tie_breaks")
        log(f"{Path(model).name}: every layer's bits and the predictions equal qonnx's execution on "
            f"{source['validated_inputs']} {source['validated_on']} inputs"
            + (f", except {ties} predictions where the float graph broke an exact tie of the integer scores by "
               "rounding (mstbnn keeps the lowest class)" if ties else ""))
    # A model trained against height-limited (or negation) trees keeps its saving
    # only when compiled the same way: default to the training's settings.
    trained = (net.meta or {}).get("train") or {}
    if max_depth is None:
        max_depth = trained.get("max_depth")
    negation = negation or bool(trained.get("negation"))
    if cost is None:
        cost = trained.get("cost", "xnor")
    scheduled = schedule_network(net, reuse=reuse, max_depth=max_depth, negation=negation, cost=cost)
    if testset is not None:
        # A compiled artefact must compute exactly what it was compiled from.
        direct = run(net, testset["x"]).classes
        reuse_classes = run(scheduled, testset["x"], mode="reuse").classes
        if not np.array_equal(direct, reuse_classes):  # pragma: no cover - would be a compiler bug
            raise RuntimeError("reuse executor disagrees with direct executor on the test set")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory; choose another -o")
    files = {} if testset is None else {
        TESTSET: io.npz_bytes({k: np.asarray(v) for k, v in testset.items() if k in ("x", "y") and v is not None})}
    io.save(scheduled, out_dir, stats=network_cost(scheduled), files=files)
    log(format_table(scheduled))
    return scheduled


def _cmd_compile(args) -> int:
    compile_model(
        args.model,
        args.output,
        reuse=not args.no_reuse,
        max_depth=args.max_depth,
        negation=args.negation,
        onnx_options={"input_scale": args.input_scale, "input_offset": args.input_offset,
                      "test_set": args.test_set, "vectors": args.vectors},
        cost=args.cost,
    )
    print(f"wrote {Path(args.output) / 'network.json'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile",
        help="turn a trained model (.pt) or an IR into a scheduled artefact directory",
        description="Build a minimum-height MST schedule for every binary layer and write the artefact "
        "(DIR/network.json + DIR/network.npz), printing a per-layer cost table.",
    )
    p.add_argument("model", help="model.pt from `mstbnn train`, a QONNX model.onnx, or an artefact directory / network.json")
    p.add_argument("-o", "--output", required=True, help="artefact directory to write")
    p.add_argument("--max-depth", type=int, default=None, metavar="H",
                   help="limit tree height to H levels (default: the limit the model was trained with, else none)")
    p.add_argument("--negation", action="store_true",
                   help="allow negation edges, weight min(d, N - d) (default: on if the model was trained with them)")
    p.add_argument("--no-reuse", action="store_true", help="plain schedule: every channel a root (baseline)")
    p.add_argument("--cost", choices=("xnor", "luts"), default=None,
                   help="what the trees minimise: XNOR count (xnor) or the unrolled engine's LUT model (luts); "
                        "default: what the model was trained with, else xnor")
    q = p.add_argument_group("QONNX models (.onnx, e.g. from brevitas.export.export_qonnx)")
    q.add_argument("--input-scale", type=float, default=None, metavar="S",
                   help="binary-input model: float input = raw * S + OFFSET (8-bit raw; FINN's MNIST models that "
                        "compute 2x - 1 themselves: S = 1/255 = 0.00392156862745098)")
    q.add_argument("--input-offset", type=float, default=None, metavar="OFFSET",
                   help="see --input-scale (default 0; [-1, 1] preprocessing: S = 2/255, OFFSET = -1)")
    q.add_argument("--test-set", default=None, metavar="NPZ",
                   help="raw integer inputs x (and labels y) to validate the import on and ship with the artefact")
    q.add_argument("--vectors", type=int, default=None, metavar="N",
                   help="without --test-set: validate against qonnx on N seeded random inputs (default 256)")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser(
        "demo",
        help="the whole flow on digits: train, compile, verilog, sim, synth, report, summary",
        description="Train the digits mlp with lambda = 0 and with the MST regulariser, compile, generate both "
        "engines, simulate them in Verilator, synthesise for iCE40 and ECP5, and print a summary table.",
    )
    p.add_argument("-o", "--output", default="build/demo", help="output directory (default build/demo)")
    p.add_argument("--hidden", default="128", help="hidden widths of the mlp (default 128)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs per model (default 40)")
    # A 128-wide mlp loses little accuracy at lambda 2; train's default (tuned for
    # 256-wide layers) costs this narrow net several points.
    p.add_argument("--mst-lambda", type=float, default=2.0, help="regulariser strength (default 2)")
    # Shallow trees keep the reuse engine's pipeline (and flip-flops) short enough for an iCE40 HX8K.
    p.add_argument("--max-depth", type=int, default=6, help="tree height limit for the MST model (default 6)")
    p.add_argument("--vectors", type=int, default=200, help="random vectors simulated after the test set (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)


# --------------------------------------------------------------------------- demo

DEMO_DEVICES_ICE40 = ("ice40-up5k", "ice40-hx8k")
DEMO_DEVICE_ECP5 = "ecp5-25k"


def _step(k: int, total: int, text: str) -> None:
    print(f"\n[{k}/{total}] {text}", flush=True)


def _accuracy(net_dir: Path) -> float | None:
    import numpy as np

    from mstbnn.compiler.execute import run

    net, testset = load_model(net_dir)
    if testset is None:
        return None
    return 100.0 * float(np.mean(run(net, testset["x"]).classes == testset["y"]))


def _run(argv: list[str]) -> int:
    from mstbnn.cli import main

    print("$ mstbnn " + " ".join(argv), flush=True)
    code = main(argv)
    if code not in (0,):
        raise UserError(f"demo step `mstbnn {' '.join(argv)}` failed with exit code {code}; see the lines above")
    return code


def _synth_smallest(net_dir: Path, devices, baseline: bool) -> dict | str:
    """Synthesise on the first device whose fit check passes: its report, or why none was built (a table cell).

    A refusal (over capacity, or above the share place-and-route was measured
    to handle) moves on to the next device, printing its one line; any other
    error stops the demo as it would stop `mstbnn synth`.
    """
    from mstbnn.boards.cli import synth_network
    from mstbnn.boards.synth import FitRefused

    why = "not run"
    for device in devices:
        try:
            return synth_network(net_dir, device, baseline=baseline, stream=sys.stdout)
        except FitRefused as exc:
            print(f"  {exc}", flush=True)
            why = "may not route" if "may not route" in str(exc) else "does not fit"
    return why


def run_demo(out: Path, *, hidden: str, epochs: int, mst_lambda: float | None, max_depth: int | None, vectors: int,
             seed: int) -> Path:
    """The whole flow on digits; returns the path of the summary table."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    total = 7
    runs = {"lambda0": 0.0, "mst": mst_lambda}
    _step(1, total, f"train the digits mlp (hidden {hidden}) with lambda = 0 and with the MST regulariser "
                    f"(lambda {mst_lambda:g}, trees of height <= {max_depth})")
    for name, lam in runs.items():
        argv = ["train", "--model", "mlp", "--hidden", hidden, "--epochs", str(epochs), "--seed", str(seed),
                "-o", str(out / f"{name}.pt")]
        if lam is not None:
            argv += ["--mst-lambda", f"{lam:g}"]
        if lam and max_depth is not None:
            argv += ["--max-depth", str(max_depth)]
        _run(argv)
    _step(2, total, "compile both: MST schedules, golden executors agree on the test set")
    for name in runs:
        _run(["compile", str(out / f"{name}.pt"), "-o", str(out / name)])
    mst_dir = out / "mst"
    _step(3, total, "generate Verilog: reuse engine and plain baseline")
    _run(["verilog", str(mst_dir)])
    _run(["verilog", str(mst_dir), "--baseline"])
    _step(4, total, "simulate both engines in Verilator, bit-exact against the golden executor")
    _run(["sim", str(mst_dir), "--vectors", str(vectors)])
    _run(["sim", str(mst_dir), "--baseline", "--vectors", str(vectors)])
    _step(5, total, f"synthesise for the smallest iCE40 that fits and for {DEMO_DEVICE_ECP5}")
    synth = {}
    for baseline in (False, True):
        engine = "baseline" if baseline else "reuse"
        synth[("ice40", engine)] = _synth_smallest(mst_dir, DEMO_DEVICES_ICE40, baseline)
        synth[("ecp5", engine)] = _synth_smallest(mst_dir, (DEMO_DEVICE_ECP5,), baseline)
    _step(6, total, "report with plots")
    _run(["report", str(mst_dir), "--compare", str(out / "lambda0")])
    _step(7, total, "summary")

    from mstbnn.compiler.cost import network_cost

    acc0, acc = _accuracy(out / "lambda0"), _accuracy(mst_dir)
    cost0 = network_cost(load_model(out / "lambda0")[0])
    cost = network_cost(load_model(mst_dir)[0])
    sims = {e: json.loads(result_path(mst_dir, "sim", baseline=e == "baseline").read_text()) for e in ("reuse", "baseline")}

    def synth_cell(family, engine, field):
        r = synth.get((family, engine))
        if isinstance(r, str):  # refused on every device tried
            return r
        if field == "lut":
            return f"{r['resources']['lut']['used']:,} ({r['device']})"
        if field == "fmax":
            return f"{r['fmax_mhz']:.1f} MHz"
        return f"{r['throughput_per_s'] / 1e6:.2f} M/s"

    rows = [
        "| figure | lambda = 0 | MST lambda |",
        "|---|---:|---:|",
        f"| test accuracy (compiled network) | {acc0:.2f} % | {acc:.2f} % |",
        f"| XNORs per inference plain -> reuse | {cost0['xnor_plain']:,} -> {cost0['xnor_reuse']:,} "
        f"({cost0['xnor_ratio']:.2f}x) | {cost['xnor_plain']:,} -> {cost['xnor_reuse']:,} ({cost['xnor_ratio']:.2f}x) |",
        f"| tallest tree | {cost0['max_height']} | {cost['max_height']} |",
        "",
        "| MST network, engine | baseline | reuse |",
        "|---|---:|---:|",
    ]
    for family, label in (("ice40", "iCE40"), ("ecp5", "ECP5")):
        rows.append(f"| {label} LUTs | {synth_cell(family, 'baseline', 'lut')} | {synth_cell(family, 'reuse', 'lut')} |")
        rows.append(f"| {label} Fmax | {synth_cell(family, 'baseline', 'fmax')} | {synth_cell(family, 'reuse', 'fmax')} |")
        rows.append(f"| {label} throughput | {synth_cell(family, 'baseline', 'tp')} | {synth_cell(family, 'reuse', 'tp')} |")
    rows.append(
        f"| vectors bit-exact (Verilator) | {sims['baseline']['bit_exact']}/{sims['baseline']['vectors']} "
        f"| {sims['reuse']['bit_exact']}/{sims['reuse']['vectors']} |"
    )
    table = "\n".join(rows) + "\n"
    summary = out / "summary.md"
    summary.write_text("# mstbnn demo: digits mlp\n\n" + table)
    print(table)
    print(f"everything is in {out}/ (report: {mst_dir / 'report.md'})")
    return summary


def _check_demo_args(args) -> None:
    """Every demo option, before the first training step (the steps would refuse them only later)."""
    from mstbnn import checks
    from mstbnn.nn.cli import _widths
    from mstbnn.sim.cli import MAX_VECTORS, VERILATOR_SPACES

    checks.writable_output("-o", args.output, directory=True)
    checks.no_spaces(args.output, VERILATOR_SPACES)
    checks.seed("--seed", args.seed)
    try:
        _widths(args.hidden)
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"--hidden: {exc}") from None
    checks.integer("--epochs", args.epochs, minimum=1)
    checks.number("--mst-lambda", args.mst_lambda, minimum=0)
    checks.integer("--max-depth", args.max_depth, minimum=1)
    checks.integer("--vectors", args.vectors, minimum=0, maximum=MAX_VECTORS)


def _cmd_demo(args) -> int:
    _check_demo_args(args)
    run_demo(Path(args.output), hidden=args.hidden, epochs=args.epochs, mst_lambda=args.mst_lambda,
             max_depth=args.max_depth, vectors=args.vectors, seed=args.seed)
    return 0
