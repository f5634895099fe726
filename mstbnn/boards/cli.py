"""Board commands: ``synth`` (utilisation, Fmax), ``bitstream`` (iCEBreaker, ULX3S), ``run`` (host side).

Heavy imports (amaranth, the engine) happen inside the handlers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mstbnn.errors import UserError

from mstbnn.artefact import TESTSET

__all__ = ["add_commands", "engine_of", "synth_network", "engine_name", "report_key", "format_report"]


def engine_name(baseline: bool, engine: str = "unrolled") -> str:
    """reuse / baseline for the unrolled engine, folded-reuse / folded-baseline for the folded one."""
    name = "baseline" if baseline else "reuse"
    return f"folded-{name}" if engine == "folded" else name


def engine_of(net_dir, baseline: bool, engine: str = "unrolled", device=None, *, step: str, stream=None,
              options=None):
    """The plan of the engine ``mstbnn verilog`` generated for the artefact in ``net_dir``, from its spec: ``(plan, spec)``.

    The plan is what fit checks read; :func:`mstbnn.hw.spec.engine_hardware`
    builds the engine once they pass.

    A directory without generated RTL gets it first, with the defaults (and,
    for the folded engine, S and G chosen for ``device``), exactly as
    ``mstbnn verilog`` would, and says so on ``stream``; ``options`` are
    generator options for that generation (e.g. ``{"target_fps": F}``). A
    stale spec (the network changed since) is refused with one line.
    """
    from mstbnn.artefact import spec_path
    from mstbnn.hw.spec import EngineSpec, generate, load_spec, plan_engine, verilog_flags

    stream = sys.stderr if stream is None else stream
    net_dir = Path(net_dir)
    if not net_dir.is_dir():
        raise UserError(f"{net_dir}: no such directory; give a compiled artefact directory (from `mstbnn compile`)")
    if not spec_path(net_dir, baseline, engine).is_file():
        spec = EngineSpec(engine, not baseline, dict(options or {}))
        flags = verilog_flags(EngineSpec(engine, not baseline, dict(options or {}),
                                         device=device.name if engine == "folded" and device else None))
        print(f"{step}: no generated engine in {spec_path(net_dir, baseline, engine).parent}; "
              f"generating it with the defaults (`mstbnn verilog {net_dir}{flags}`)", file=stream, flush=True)
        generate(net_dir, spec, device=device if engine == "folded" else None)
    spec, net, _ = load_spec(net_dir, baseline=baseline, engine=engine, step=f"`mstbnn {step}`")
    if device is not None and spec.device not in (None, device.name):
        print(f"{step}: the engine's options were chosen for {spec.device}; building it as generated "
              f"(run `mstbnn verilog {net_dir}{verilog_flags(spec).replace(spec.device, device.name)}` to re-choose)",
              file=stream, flush=True)
    return plan_engine(net, spec), spec


def _network_on_board(net_dir):
    """The network a board built by ``mstbnn bitstream`` runs; refused when it changed since generation."""
    from mstbnn.artefact import spec_path
    from mstbnn.hw.spec import load_spec

    net_dir = Path(net_dir)
    if not net_dir.is_dir():
        raise UserError(f"{net_dir}: no such directory; give a compiled artefact directory (from `mstbnn compile`)")
    baseline = not spec_path(net_dir).is_file() and spec_path(net_dir, baseline=True).is_file()
    _, net, _ = load_spec(net_dir, baseline=baseline, step="`mstbnn run`")
    return net


def report_key(device_name: str, baseline: bool, place: bool = True, engine: str = "unrolled") -> str:
    """Where a run is stored in synth.json."""
    return f"{device_name}/{engine_name(baseline, engine)}" + ("" if place else "/synth-only")


def synth_network(net_dir, device_name: str, *, baseline: bool = False, force: bool = False,
                  freq_mhz: float | None = None, place: bool = True, stream=None, engine: str = "unrolled",
                  target_fps: float | None = None, timeout: float | None = None, router: str | None = None) -> dict:
    """Fit-check, synthesise and place-and-route the artefact in ``net_dir``; record it in synth.json.

    Returns the run's report (also stored under :func:`report_key` in
    ``net_dir/synth.json``). ``place=False`` runs yosys only. ``timeout``
    (seconds, yosys + nextpnr): see :func:`mstbnn.boards.synth.synthesize`;
    when nextpnr is stopped, yosys' counts are still recorded, with ``stopped``.
    """
    from mstbnn.devices import get_device
    from mstbnn.artefact import SYNTH_REPORT
    from mstbnn.boards.synth import SynthTimeout, check_fit, harness_fit, synthesize, write_report
    from mstbnn.hw.spec import engine_hardware

    stream = sys.stderr if stream is None else stream
    if target_fps is not None and engine != "folded":
        raise UserError("--target-fps applies to --engine folded only")
    device = get_device(device_name)
    kind = engine
    plan, spec = engine_of(net_dir, baseline, kind, device, step="synth", stream=stream,
                           options={"target_fps": target_fps} if target_fps is not None else None)
    if target_fps is not None and spec.options.get("target_fps") != target_fps:
        raise UserError(f"{net_dir}: the generated {kind} engine was not chosen for --target-fps {target_fps:g}; "
                        f"run `mstbnn verilog {net_dir} --engine {kind} --device {device.name} --target-fps {target_fps:g}`")
    # The routability headroom was measured on unrolled engines; the folded one is sized by choose_config.
    fit = harness_fit(plan, device, routable_share=1.0 if kind == "folded" else None)
    check_fit(fit, device, force, engine=kind)
    engine = engine_hardware(plan)
    name = engine_name(baseline, kind)
    print(f"synth {name} engine on {device.name}: estimated {fit['luts']:,} LUTs, {fit['ffs']:,} FFs",
          file=stream, flush=True)
    build_dir = Path(net_dir) / "synth" / (f"{device.name}-{name}" + ("" if place else "-synth-only"))
    head = {"engine": name, "network_sha256": spec.network_sha256, "spec": spec.fields(), "estimate": fit}
    try:
        report = synthesize(engine, device, build_dir, freq_mhz=freq_mhz, place=place, stream=stream, timeout=timeout,
                            router=router)
    except SynthTimeout as stopped:
        if stopped.report is not None:  # nextpnr was stopped: keep what yosys measured
            write_report(Path(net_dir) / SYNTH_REPORT, report_key(device.name, baseline, place, kind),
                         {**head, **stopped.report})
        raise
    report = {**head, **report}
    if "target_fps" in spec.options:  # achieved = placed Fmax / II, beside the target
        report["target_fps"] = spec.options["target_fps"]
        report["achieved_fps"] = report["throughput_per_s"]
    write_report(Path(net_dir) / SYNTH_REPORT, report_key(device.name, baseline, place, kind), report)
    return report


def format_report(report: dict) -> str:
    """One paragraph a person reads after a synthesis run."""
    r = report["resources"]

    def used(k):
        u, a = r[k]["used"], r[k]["available"]
        if u is None:
            return "n/a (not placed)"
        return f"{u:,} / {a:,} ({100.0 * u / a:.1f}%)" if a else f"{u:,} / 0"

    fmax = report["fmax_mhz"]
    lines = [
        f"{report['device']} ({report['part']} {report['package']}), {report['engine']} engine"
        + ("" if report.get("placed", True) else " (yosys only, not placed)") + ":",
        f"  LUT {used('lut')}   FF {used('ff')}   BRAM {used('bram')}   DSP {used('dsp')}",
        f"  logic cells placed {used('logic_cells')}   I/O {used('io')}",
        f"  Fmax {fmax:.1f} MHz   II {report['initiation_interval']} cycles -> "
        f"{report['throughput_per_s'] / 1e6:.2f} M inferences/s   latency {report['latency_cycles']} cycles"
        f" = {report['latency_ns']:.0f} ns" if fmax else
        f"  Fmax: not measured   II {report['initiation_interval']} cycles   latency {report['latency_cycles']} cycles",
    ]
    if "target_fps" in report:
        got = report["achieved_fps"]
        lines.append(f"  target {report['target_fps']:,.0f} images/s: " + (
            f"achieved {got:,.0f} images/s (placed Fmax / II), {'met' if got >= report['target_fps'] else 'MISSED'}"
            if got else "achieved: not measured (not placed)"))
    loads = report.get("harness", {}).get("loads_per_image")
    if loads is not None:
        built = report.get("throughput_as_built_per_s")
        rate = f"{built:,.0f} inferences/s as built" if built else "as-built rate not measured"
        lines.append(f"  I/O: {loads:,} loads of {report['harness']['chunk_bits']} pins per image -> {rate} "
                     f"(Fmax / max(II, loads per image))")
    if report.get("stopped"):
        lines.append(f"  stopped: {report['stopped']['stage']} after {report['stopped']['after_s']:.0f} s "
                     f"(log: {report['stopped']['log']})")
    return "\n".join(lines)


# Upper bound of --freq: beyond every iCE40 / ECP5 fabric clock.
MAX_FREQ_MHZ = 1000.0


def _check_synth_args(args) -> None:
    from mstbnn import checks

    checks.number("--freq", args.freq, above=0, maximum=MAX_FREQ_MHZ, why="the placer's target clock in MHz")
    checks.number("--timeout", args.timeout, above=0, why="seconds for yosys + nextpnr")
    checks.number("--target-fps", args.target_fps, above=0, why="images per second")


def _check_baud(args) -> None:
    from mstbnn import checks

    checks.integer("--baud", args.baud, minimum=1, why="UART bits per second, e.g. 115200")


def _check_run_args(args) -> None:
    from mstbnn import checks

    _check_baud(args)
    checks.integer("--limit", args.limit, minimum=1, why="the number of images to send")
    checks.number("--timeout", args.timeout, above=0, why="seconds to wait for each answer")


def _cmd_synth(args) -> int:
    from mstbnn.artefact import SYNTH_REPORT
    from mstbnn.boards.synth import DEFAULT_TIMEOUT_S, SynthTimeout

    _check_synth_args(args)
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    try:
        report = synth_network(args.dir, args.device, baseline=args.baseline, force=args.force, freq_mhz=args.freq,
                               place=not args.synth_only, engine=args.engine, target_fps=args.target_fps,
                               timeout=timeout, router=args.router)
    except SynthTimeout as stopped:
        # Exit 1, not 2: the input was fine, the run did not finish in its budget.
        kept = f"; yosys' counts are in {Path(args.dir) / SYNTH_REPORT}" if stopped.report is not None else ""
        print(f"mstbnn: error: {stopped}{kept}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"report: {Path(args.dir) / SYNTH_REPORT}")
    return 0


def _cmd_bitstream(args) -> int:
    from mstbnn.boards.bitstream import build_bitstream, get_board, uart_divisor
    from mstbnn.devices import DEVICES
    from mstbnn.boards.protocol import format_from_network
    from mstbnn.boards.synth import check_fit, estimate_fit
    from mstbnn.hw.spec import engine_hardware

    _check_baud(args)
    board = get_board(args.board)
    uart_divisor(board.clock_hz, args.baud)  # refuse an unreachable baud rate before any work
    device = DEVICES[board.device]
    plan, spec = engine_of(args.dir, args.baseline, device=device, step="bitstream")
    net = plan.net
    fit = estimate_fit(plan.resource_estimate(device.family), device)
    check_fit(fit, device, args.force)
    engine = engine_hardware(plan)
    build_dir = Path(args.dir) / "board" / f"{board.name}-{engine_name(args.baseline)}"
    out = build_bitstream(engine, format_from_network(net), board, build_dir, baud=args.baud)
    print(f"bitstream: {out}")
    print(f"program it (e.g. `openFPGALoader -b {board.name.split('-')[0]} {out}`), then "
          f"`mstbnn run {args.dir} --port PORT --baud {args.baud}`")
    return 0


def _read_inputs(args, net):
    from mstbnn.artefact import read_testset

    path = Path(args.inputs) if args.inputs else Path(args.dir) / TESTSET
    if not path.is_file():
        hint = "" if args.inputs else " (the artefact has no test set)"
        raise UserError(f"{path}: no such file{hint}; give --inputs FILE.npy or FILE.npz with raw integer inputs")
    x, labels = read_testset(path, net.layers[0].shape, net.layers[0].value_range)
    if args.limit is not None:
        x = x[: args.limit]
        labels = labels[: args.limit] if labels is not None else None
    return x, labels


def _cmd_run(args) -> int:
    import numpy as np

    from mstbnn.boards.host import SerialPort, classify
    from mstbnn.boards.protocol import format_from_network
    from mstbnn.compiler.execute import run

    _check_run_args(args)
    net = _network_on_board(args.dir)
    fmt = format_from_network(net)
    x, labels = _read_inputs(args, net)
    try:
        golden = run(net, x).classes
    except ValueError as exc:
        raise UserError(f"inputs do not suit the network: {exc}") from None
    print("image  board  golden" + ("  label" if labels is not None else ""))

    def show(i, c):
        tail = f"  {int(labels[i]):>5}" if labels is not None else ""
        mark = "" if c == golden[i] else "  MISMATCH"
        print(f"{i:>5}  {c:>5}  {int(golden[i]):>6}{tail}{mark}", flush=True)

    with SerialPort(args.port, args.baud) as port:
        got = classify(port, fmt, x, timeout=args.timeout, on_result=show)
    agree = int(np.sum(got == golden))
    print(f"{agree} / {len(x)} predictions agree with the golden executor")
    if labels is not None:
        print(f"accuracy on the board: {np.mean(got == labels):.4f}")
    return 0 if agree == len(x) else 1


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("synth", help="synthesise + place-and-route an engine (yosys, nextpnr); writes DIR/synth.json",
                              description="Synthesise and place-and-route the unrolled engine of a compiled network "
                                          "with the YoWASP yosys + nextpnr, and record LUT/FF/BRAM/DSP use, Fmax, "
                                          "throughput and latency in DIR/synth.json.")
    p.add_argument("dir", help="compiled artefact directory")
    p.add_argument("--device", required=True, help="ice40-up5k, ice40-hx8k, ecp5-12k, ecp5-25k, ecp5-45k or ecp5-85k")
    p.add_argument("--baseline", action="store_true", help="the plain engine (no MST reuse) of the same network")
    p.add_argument("--engine", choices=("unrolled", "folded"), default="unrolled",
                   help="unrolled (default) or folded (S and G chosen for the device's LUT and block-RAM budget)")
    p.add_argument("--force", action="store_true", help="synthesise even when the estimate does not fit the device")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="placer target clock (default: 60 on iCE40, 120 on ECP5); Fmax is measured either way")
    p.add_argument("--target-fps", type=float, default=None, metavar="F",
                   help="folded: when DIR has no generated engine, generate the smallest one meeting F images/s "
                        "(as `mstbnn verilog --target-fps`); the report gives placed Fmax / II beside F")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="time budget for yosys + nextpnr (default 1800); a run that overruns stops with one line "
                        "naming the stage and its log, exit 1")
    p.add_argument("--router", choices=("router1", "router2"), default=None,
                   help="nextpnr router (default: nextpnr's own, router1); router2 is built for congested designs")
    p.add_argument("--synth-only", action="store_true",
                   help="yosys only: LUT/FF counts without place-and-route or Fmax (for designs too big to place quickly)")
    p.set_defaults(func=_cmd_synth)

    p = subparsers.add_parser("bitstream", help="board bitstream of the UART top (iCEBreaker, ULX3S)",
                              description="Build a bitstream for a board: the engine behind a UART (images in, "
                                          "class index out; framing in docs/boards.md).")
    p.add_argument("dir", help="compiled artefact directory")
    p.add_argument("--board", required=True, help="icebreaker, ulx3s (= ulx3s-85f), ulx3s-12f, ulx3s-25f or ulx3s-45f")
    p.add_argument("--baseline", action="store_true", help="the plain engine (no MST reuse)")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    p.add_argument("--force", action="store_true", help="build even when the estimate does not fit the device")
    p.set_defaults(func=_cmd_bitstream)

    p = subparsers.add_parser("run", help="send images to a board over a serial port and print its predictions",
                              description="Host side of the UART top: sends each image, reads the class byte, "
                                          "and compares with the golden executor (and labels, when known).")
    p.add_argument("dir", help="compiled artefact directory (the network the board runs)")
    p.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    p.add_argument("--inputs", default=None, help=f"raw integer inputs: .npy, or .npz with x (and y); default DIR/{TESTSET}")
    p.add_argument("--limit", type=int, default=None, help="send only the first N images")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each answer (default 1)")
    p.set_defaults(func=_cmd_run)
