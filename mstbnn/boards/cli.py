"""Board commands: ``synth`` (utilisation, Fmax), ``bitstream`` (iCEBreaker, ULX3S), ``run`` (host side).

Heavy imports (amaranth, the engine) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["add_commands", "make_engine", "synth_network", "engine_name", "report_key", "format_report"]

TESTSET = "testset.npz"


def engine_name(baseline: bool, engine: str = "unrolled") -> str:
    """reuse / baseline for the unrolled engine, folded-reuse / folded-baseline for the folded one."""
    name = "baseline" if baseline else "reuse"
    return f"folded-{name}" if engine == "folded" else name


def make_engine(net, baseline: bool, engine: str = "unrolled", device=None):
    """The engine of ``net``: plain (no reuse) when ``baseline``.

    The folded engine's S and G are chosen for ``device`` (block RAM and LUT
    budget) by :func:`mstbnn.hw.folded.estimate.choose_config`.
    """
    if engine == "folded":
        from mstbnn.hw.folded.estimate import choose_config
        from mstbnn.hw.folded.network import FoldedNetworkEngine

        if device is None:
            return FoldedNetworkEngine(net, reuse=not baseline)
        net, config, _ = choose_config(net, device, reuse=not baseline)
        return FoldedNetworkEngine(net, reuse=not baseline, config=config)
    from mstbnn.hw.network import NetworkEngine

    return NetworkEngine(net, reuse=not baseline)


def _load_network(directory):
    from mstbnn.compiler import io

    path = Path(directory)
    if not path.is_dir():
        raise UserError(f"{path}: no such directory; give a compiled artefact directory (from `mstbnn compile`)")
    return io.load(path)


def report_key(device_name: str, baseline: bool, place: bool = True, engine: str = "unrolled") -> str:
    """Where a run is stored in synth.json."""
    return f"{device_name}/{engine_name(baseline, engine)}" + ("" if place else "/synth-only")


def synth_network(net_dir, device_name: str, *, baseline: bool = False, force: bool = False,
                  freq_mhz: float | None = None, place: bool = True, stream=None, engine: str = "unrolled",
                  timeout: float | None = None, router: str | None = None) -> dict:
    """Fit-check, synthesise and place-and-route the artefact in ``net_dir``; record it in synth.json.

    Returns the run's report (also stored under :func:`report_key` in
    ``net_dir/synth.json``). ``place=False`` runs yosys only. ``timeout``
    (seconds, yosys + nextpnr): see :func:`mstbnn.boards.synth.synthesize`;
    when nextpnr is stopped, yosys' counts are still recorded, with ``stopped``.
    """
    from mstbnn.boards.devices import get_device
    from mstbnn.boards.synth import (REPORT_NAME, SynthTimeout, check_fit, estimate_fit, network_digest, synthesize,
                                     write_report)
    from mstbnn.boards.wrapper import choose_chunk, harness_ffs

    stream = sys.stderr if stream is None else stream
    device = get_device(device_name)
    net = _load_network(net_dir)
    kind = engine
    engine = make_engine(net, baseline, kind, device)
    in_width, class_width = len(engine.in_data), len(engine.out_class)
    chunk = choose_chunk(in_width, int(engine.input_width), class_width, device.io_pins)
    # The routability headroom was measured on unrolled engines; the folded one is sized by choose_config.
    fit = estimate_fit(engine.resource_estimate(device.family), device, harness_ffs(in_width, chunk, class_width),
                       routable_share=1.0 if kind == "folded" else None)
    check_fit(fit, device, force)
    name = engine_name(baseline, kind)
    print(f"synth {name} engine on {device.name}: estimated {fit['luts']:,} LUTs, {fit['ffs']:,} FFs",
          file=stream, flush=True)
    build_dir = Path(net_dir) / "synth" / (f"{device.name}-{name}" + ("" if place else "-synth-only"))
    try:
        report = synthesize(engine, device, build_dir, freq_mhz=freq_mhz, place=place, stream=stream, timeout=timeout,
                            router=router)
    except SynthTimeout as stopped:
        if stopped.report is not None:  # nextpnr was stopped: keep what yosys measured
            report = {"engine": name, "network_sha256": network_digest(net_dir), "estimate": fit, **stopped.report}
            write_report(Path(net_dir) / REPORT_NAME, report_key(device.name, baseline, place, kind), report)
        raise
    report = {"engine": name, "network_sha256": network_digest(net_dir), "estimate": fit, **report}
    write_report(Path(net_dir) / REPORT_NAME, report_key(device.name, baseline, place, kind), report)
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


def _cmd_synth(args) -> int:
    from mstbnn.boards.synth import DEFAULT_TIMEOUT_S, REPORT_NAME, SynthTimeout

    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if not timeout > 0:
        raise UserError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    try:
        report = synth_network(args.dir, args.device, baseline=args.baseline, force=args.force, freq_mhz=args.freq,
                               place=not args.synth_only, engine=args.engine, timeout=timeout, router=args.router)
    except SynthTimeout as stopped:
        # Exit 1, not 2: the input was fine, the run did not finish in its budget.
        kept = f"; yosys' counts are in {Path(args.dir) / REPORT_NAME}" if stopped.report is not None else ""
        print(f"mstbnn: error: {stopped}{kept}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"report: {Path(args.dir) / REPORT_NAME}")
    return 0


def _cmd_bitstream(args) -> int:
    from mstbnn.boards.bitstream import build_bitstream, get_board, uart_divisor
    from mstbnn.boards.devices import DEVICES
    from mstbnn.boards.protocol import format_from_network
    from mstbnn.boards.synth import check_fit, estimate_fit

    board = get_board(args.board)
    uart_divisor(board.clock_hz, args.baud)  # refuse an unreachable baud rate before any work
    device = DEVICES[board.device]
    net = _load_network(args.dir)
    engine = make_engine(net, args.baseline)
    fit = estimate_fit(engine.resource_estimate(device.family), device)
    check_fit(fit, device, args.force)
    build_dir = Path(args.dir) / "board" / f"{board.name}-{engine_name(args.baseline)}"
    out = build_bitstream(engine, format_from_network(net), board, build_dir, baud=args.baud)
    print(f"bitstream: {out}")
    print(f"program it (e.g. `openFPGALoader -b {board.name.split('-')[0]} {out}`), then "
          f"`mstbnn run {args.dir} --port PORT --baud {args.baud}`")
    return 0


def _read_inputs(args, net):
    import numpy as np

    path = Path(args.inputs) if args.inputs else Path(args.dir) / TESTSET
    if not path.is_file():
        hint = "" if args.inputs else " (the artefact has no test set)"
        raise UserError(f"{path}: no such file{hint}; give --inputs FILE.npy or FILE.npz with raw integer inputs")
    labels = None
    try:
        if path.suffix == ".npz":
            with np.load(path) as f:
                if "x" not in f:
                    raise UserError(f"{path}: no array 'x'; store the raw inputs as x (and labels as y)")
                x = f["x"]
                labels = f["y"] if "y" in f else None
        else:
            x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read inputs ({exc}); give a .npy or .npz file") from None
    shape = tuple(net.layers[0].shape)
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != shape:
        raise UserError(f"{path}: inputs have shape {x.shape}; the network takes (N, {', '.join(map(str, shape))})")
    if args.limit is not None:
        x = x[: args.limit]
        labels = labels[: args.limit] if labels is not None else None
    return x.astype(np.int64), labels


def _cmd_run(args) -> int:
    import numpy as np

    from mstbnn.boards.host import SerialPort, classify
    from mstbnn.boards.protocol import format_from_network
    from mstbnn.compiler.execute import run

    net = _load_network(args.dir)
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
