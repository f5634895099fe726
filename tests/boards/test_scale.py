"""Synthesis at MNIST scale: time budget, routability headroom, throughput the I/O can feed."""

import io as stdio
import json
import sys
import time

import numpy as np
import pytest

from mstbnn.boards import synth as synth_mod
from mstbnn.boards.cli import format_report
from mstbnn.devices import get_device
from mstbnn.boards.synth import (
    ROUTABLE_SHARE,
    SynthTimeout,
    check_fit,
    estimate_fit,
    loads_per_image,
    synthesize,
)
from mstbnn.boards.toolchain import ToolTimeout, run_tool
from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network
from mstbnn.errors import UserError
from mstbnn.hw.network import NetworkEngine


def test_tool_over_its_budget_is_stopped_with_one_line_naming_it_and_its_log(tmp_path):
    argv = [sys.executable, "-c", "import time; print('placing', flush=True); time.sleep(60)"]
    start = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        run_tool(argv, tmp_path, "slow.log", "nextpnr-ecp5 ecp5-25k", stream=stdio.StringIO(), timeout=1.5,
                 budget_hint=" (time budget --timeout 1.5 s)")
    assert time.monotonic() - start < 20  # stopped, not waited out
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("nextpnr-ecp5 ecp5-25k stopped after")
    assert "--timeout 1.5 s" in msg and "placing" in msg and str(tmp_path / "slow.log") in msg
    assert info.value.stage == "nextpnr-ecp5 ecp5-25k"


def _small_artefact(tmp_path):
    rng = np.random.default_rng(3)
    net = schedule_network(random_dense_network(rng, features=12, hidden=(10,), classes=4, bits=4))
    d = tmp_path / "net"
    io.save(net, d)
    return d, net


def test_yosys_over_the_budget_stops_before_nextpnr(tmp_path):
    _, net = _small_artefact(tmp_path)
    with pytest.raises(SynthTimeout) as info:
        synthesize(NetworkEngine(net), get_device("ecp5-25k"), tmp_path / "b", timeout=0.01,
                   stream=stdio.StringIO())
    assert info.value.stage.startswith("yosys") and info.value.report is None
    assert not (tmp_path / "b" / "nextpnr.log").exists()


@pytest.fixture
def slow_nextpnr(monkeypatch):
    """Real yosys; nextpnr replaced by a command that never finishes, given a 1 s budget."""
    real = synth_mod.run_tool

    def run_tool_(argv, cwd, log_name, label, **kw):
        if label.startswith("nextpnr"):
            kw["timeout"] = 1.0
            script = "import time; print('Info: Running main router loop...', flush=True); time.sleep(60)"
            argv = [sys.executable, "-c", script]
        return real(argv, cwd, log_name, label, **kw)

    monkeypatch.setattr(synth_mod, "run_tool", run_tool_)


def test_stopped_placement_exits_1_and_keeps_what_yosys_measured(tmp_path, capsys, slow_nextpnr):
    d, _ = _small_artefact(tmp_path)
    assert main(["synth", str(d), "--device", "ecp5-25k", "--timeout", "600", "--router", "router2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert last.startswith("mstbnn: error: nextpnr-ecp5 ecp5-25k stopped after")
    assert "nextpnr.log" in last and "synth.json" in last and "router loop" in last
    run = json.loads((d / "synth.json").read_text())["runs"]["ecp5-25k/reuse"]
    assert run["placed"] is False and run["fmax_mhz"] is None
    assert run["stopped"]["stage"] == "nextpnr" and run["stopped"]["timeout_s"] == 600
    assert "--router router2" in run["stopped"]["nextpnr"]
    assert run["resources"]["lut"]["used"] > 0 and run["resources"]["ff"]["used"] > 0
    assert run["seconds"]["yosys"] > 0


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_bad_timeout_is_a_one_line_error(tmp_path, capsys, value):
    d, _ = _small_artefact(tmp_path)
    assert main(["synth", str(d), "--device", "ecp5-25k", "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mstbnn: error: --timeout") and err.count("\n") == 1


@pytest.mark.parametrize("device_name", ["ecp5-25k", "ice40-hx8k"])
def test_fit_check_refuses_a_design_above_the_routable_share_and_says_it_is_an_estimate(device_name):
    device = get_device(device_name)
    limit = ROUTABLE_SHARE[device.family]
    cap = device.luts
    if device.family == "ecp5":
        over, under = {"lut4_equiv": int(cap * (limit + 0.05)), "ffs": 100}, {"lut4_equiv": int(cap * (limit - 0.05)),
                                                                                 "ffs": 100}
    else:  # iCE40 logic cells = LUTs + FFs
        over = {"luts": int(cap * (limit + 0.05)) - 100, "ffs": 100}
        under = {"luts": int(cap * (limit - 0.05)) - 100, "ffs": 100}
    fit = estimate_fit(over, device)
    assert fit["fits"] and not fit["routable"]  # within capacity, above the headroom
    with pytest.raises(UserError, match=r"may not route on .*an estimate within 15% of yosys.*--force") as info:
        check_fit(fit, device, force=False)
    assert "\n" not in str(info.value)
    check_fit(fit, device, force=True)
    fit = estimate_fit(under, device)
    assert fit["routable"]
    check_fit(fit, device, force=False)


def test_routable_share_follows_the_measured_runs():
    # docs/boards.md, "Routability headroom": what routed and what did not (yosys counts).
    # 64-64-64-10 reuse engine on ice40-hx8k: 2,592 LUTs + 3,574 FFs in 6,424 of 7,680 cells, routed.
    assert estimate_fit({"luts": 2592, "ffs": 3574}, get_device("ice40-hx8k"))["routable"]
    # 64-64-64-10 lambda 0 baseline on ecp5-25k: 14,400 LUT4 sites (59%), routed.
    assert estimate_fit({"lut4_equiv": 14400, "ffs": 6133}, get_device("ecp5-25k"))["routable"]
    # 784-128-10 mnist5k reuse engine on ecp5-25k: 14,720 LUT4 sites (61%), 12,575 FFs, did not converge in 2,026 s;
    # on ecp5-45k (34%) it routed in 12 minutes.
    assert not estimate_fit({"lut4_equiv": 14720, "ffs": 12575}, get_device("ecp5-25k"))["routable"]
    assert estimate_fit({"lut4_equiv": 14720, "ffs": 12575}, get_device("ecp5-45k"))["routable"]


def test_loads_per_image():
    assert loads_per_image(6272, 8) == 784  # 784 eight-bit MNIST pixels through 8 pins
    assert loads_per_image(6272, 6272) == 1
    assert loads_per_image(50, 8) == 7
    assert loads_per_image(3 * 8, 8, beats_per_image=28 * 28) == 3 * 784  # conv-first: one pixel per beat


class _Engine:
    initiation_interval, latency, beats_per_image = 1, 31, 1


def test_report_states_what_the_pins_can_feed(tmp_path):
    # The numbers: 784 x 8-bit input through 8 pins at 85.7 MHz, II 1 -> about 109 k images/s as built.
    (tmp_path / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {"LUT4": 10, "TRELLIS_FF": 5}}}))
    (tmp_path / "report.json").write_text(json.dumps({"fmax": {"clk": {"achieved": 85.7}}, "utilization": {}}))
    device = get_device("ecp5-25k")
    report = synth_mod._report(_Engine(), device, tmp_path, 120.0, 8, 6272, 4, ["synth_ecp5"], ["--25k"], {})
    assert report["throughput_per_s"] == pytest.approx(85.7e6)
    assert report["harness"]["loads_per_image"] == 784 and report["harness"]["loads_per_beat"] == 784
    assert report["cycles_per_image_as_built"] == 784 and report["io_bound"]
    assert report["throughput_as_built_per_s"] == pytest.approx(109311.2, abs=0.1)
    text = format_report(dict(report, engine="reuse"))
    assert "784 loads of 8 pins per image" in text and "109,311 inferences/s as built" in text
