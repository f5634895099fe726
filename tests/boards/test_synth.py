"""Synthesis flow: fit check, cell counting, report file, and real yosys + nextpnr runs."""

import dataclasses
import json

import numpy as np
import pytest

from mstbnn.devices import DEVICES, get_device
from mstbnn.boards.synth import (
    check_fit,
    count_cells,
    estimate_fit,
    read_reports,
    synthesize,
    write_report,
    _write_verilog,
)
from mstbnn.boards.wrapper import SynthHarness
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network
from mstbnn.errors import UserError
from mstbnn.hw.network import NetworkEngine


def _small_engine(seed=3, reuse=True):
    rng = np.random.default_rng(seed)
    net = schedule_network(random_dense_network(rng, features=12, hidden=(10,), classes=4, bits=4))
    return NetworkEngine(net, reuse=reuse)


@pytest.mark.parametrize("family,luts,carry,want", [("ice40", 100, 30, 100), ("ecp5", 100, 30, 160)])
def test_fit_counts_carry_cells_as_two_luts_on_ecp5(family, luts, carry, want):
    device = get_device("ice40-up5k" if family == "ice40" else "ecp5-25k")
    fit = estimate_fit({"luts": luts, "carry": carry, "ffs": 50}, device, extra_ffs=7)
    assert fit["luts"] == want and fit["ffs"] == 57 and fit["fits"]
    # iCE40 logic cells: a LUT and a FF rarely share one in the engine
    assert fit["logic_cells"] == (want + 57 if family == "ice40" else max(want, 57))


def test_lut4_equivalents_of_the_estimate_take_precedence():
    fit = estimate_fit({"luts": 10, "carry": 5, "ffs": 1, "lut4_equiv": 30}, get_device("ecp5-25k"))
    assert fit["luts"] == 30


@pytest.mark.parametrize("device_name,estimate,message", [
    ("ecp5-25k", {"luts": 30000, "carry": 0, "ffs": 100}, r"30,000 LUTs > 24,288 available \(124%\)"),
    ("ecp5-25k", {"luts": 100, "carry": 0, "ffs": 25000}, r"25,000 FFs > 24,288 available"),
    # fits by LUTs and by FFs alone, not in logic cells
    ("ice40-up5k", {"luts": 3039, "carry": 0, "ffs": 3590},
     r"6,629 logic cells \(3,039 LUTs \+ 3,590 FFs\) > 5,280 available \(126%\)"),
])
def test_design_too_big_is_refused_with_the_numbers_unless_forced(device_name, estimate, message):
    device = get_device(device_name)
    fit = estimate_fit(estimate, device)
    with pytest.raises(UserError, match=f"does not fit {device_name}: estimated {message}.*--force"):
        check_fit(fit, device, force=False)
    check_fit(fit, device, force=True)


def test_design_that_fits_passes_the_check():
    device = get_device("ecp5-85k")
    full = estimate_fit({"luts": 80000, "carry": 1000, "ffs": 100}, device)
    assert full["fits"] and not full["routable"]  # within capacity, above the routable share (tests/boards/test_scale.py)
    check_fit(estimate_fit({"luts": 80000, "carry": 1000, "ffs": 100}, device, routable_share=1.0), device, force=False)
    check_fit(estimate_fit({"luts": 45000, "carry": 1000, "ffs": 100}, device), device, force=False)


@pytest.mark.parametrize("family,cells,want", [
    ("ice40", {"SB_LUT4": 10, "SB_CARRY": 4, "SB_DFF": 3, "SB_DFFESR": 2, "SB_RAM40_4K": 1},
     {"luts": 10, "carry": 4, "ffs": 5, "bram": 1, "dsp": 0}),
    ("ecp5", {"LUT4": 10, "CCU2C": 4, "TRELLIS_FF": 6, "MULT18X18D": 2},
     {"luts": 18, "lut4": 10, "carry": 4, "ffs": 6, "bram": 0, "dsp": 2}),
])
def test_cell_counts(family, cells, want):
    assert count_cells(cells, family) == want


def test_report_file_merges_runs_and_rejects_foreign_files(tmp_path):
    path = tmp_path / "synth.json"
    assert read_reports(path) == {}
    write_report(path, "ice40-up5k/reuse", {"fmax_mhz": 50.0})
    write_report(path, "ice40-up5k/baseline", {"fmax_mhz": 40.0})
    write_report(path, "ice40-up5k/reuse", {"fmax_mhz": 55.0})
    runs = read_reports(path)
    assert runs == {"ice40-up5k/baseline": {"fmax_mhz": 40.0}, "ice40-up5k/reuse": {"fmax_mhz": 55.0}}
    assert not list(tmp_path.glob("*.tmp"))
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not an mstbnn synthesis report"):
        read_reports(path)
    path.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        read_reports(path)


def test_verilog_is_byte_identical_across_runs(tmp_path):
    a, b = tmp_path / "a.v", tmp_path / "b.v"
    _write_verilog(SynthHarness(_small_engine(), 4), a)
    _write_verilog(SynthHarness(_small_engine(), 4), b)
    assert a.read_bytes() == b.read_bytes()
    assert str(tmp_path) not in a.read_text()


# The real flow, small enough for every test run: so the flow cannot rot.
@pytest.mark.parametrize("device_name", ["ice40-up5k", "ecp5-25k"])
def test_real_synthesis_and_place_and_route(tmp_path, device_name):
    device = get_device(device_name)
    engine = _small_engine()
    report = synthesize(engine, device, tmp_path / "build")
    r = report["resources"]
    assert 0 < r["lut"]["used"] <= r["lut"]["available"] == device.luts
    assert 0 < r["ff"]["used"] <= device.ffs
    # the device table says what nextpnr says
    assert r["logic_cells"]["available"] == device.luts
    assert r["bram"]["available"] == device.bram and r["dsp"]["available"] == device.dsp
    assert r["io"]["available"] == device.io_pins and r["io"]["used"] <= device.io_pins
    assert report["harness"]["ffs"] <= r["ff"]["used"]
    fmax = report["fmax_mhz"]
    assert fmax > 10
    assert report["throughput_per_s"] == pytest.approx(fmax * 1e6 / engine.initiation_interval, rel=1e-6)
    assert report["latency_ns"] == pytest.approx(engine.latency * 1e3 / fmax, rel=1e-4)
    assert report["options"]["yosys"].startswith(f"synth_{device.family}")
    assert "--timing-allow-fail" in report["options"]["nextpnr"]
    assert all(v for v in report["tools"].values())
    for name in ("top.v", "synth.ys", "yosys.log", "nextpnr.log", "report.json"):
        assert (tmp_path / "build" / name).is_file()


def test_tool_failure_is_one_line_naming_the_log(tmp_path):
    engine = _small_engine()
    # Pretend the SG48 package had 400 pins: the harness takes the whole beat
    # in parallel, and nextpnr cannot place that many I/O (toolchain gotcha 8).
    lying = dataclasses.replace(get_device("ice40-up5k"), io_pins=400)
    with pytest.raises(UserError, match=r"nextpnr-ice40 .* failed .*ERROR: .*full log: .*nextpnr.log") as info:
        synthesize(engine, lying, tmp_path)
    assert "\n" not in str(info.value)
