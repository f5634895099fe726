"""Verilog output, its JSON description and the `mstbnn verilog` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.io import save
from mstbnn.compiler.random import random_conv_network, random_dense_network
from mstbnn.hw.verilog import TOP_NAME, generate


@pytest.fixture(scope="module")
def dense_net():
    return schedule_network(random_dense_network(np.random.default_rng(0), features=8, hidden=(6,), classes=3))


@pytest.mark.parametrize("reuse", [True, False])
def test_generate_is_byte_identical_and_described(tmp_path, dense_net, reuse):
    a = generate(dense_net, tmp_path / "a", reuse=reuse)
    b = generate(dense_net, tmp_path / "b", reuse=reuse)
    assert a.read_bytes() == b.read_bytes()
    assert a.parent.name == ("rtl" if reuse else "rtl-baseline")
    text = a.read_text()
    for port in ("clk", "rst", "in_valid", "in_ready", "in_data", "out_valid", "out_ready", "out_class", "out_scores"):
        assert port in text
    desc = json.loads((a.parent / f"{TOP_NAME}.json").read_text())
    assert desc["top"] == TOP_NAME and desc["reuse"] == reuse
    assert desc["ports"]["in_data"] == 8 * 4 and desc["ports"]["out_scores"] == 3 * desc["score_width"]
    assert desc["initiation_interval"] == 1 and desc["latency"] > 0
    assert set(desc["estimate"]) == {"ice40", "ecp5"}


def test_cli_writes_rtl_and_baseline(tmp_path, capsys):
    net = schedule_network(random_conv_network(np.random.default_rng(1), input_shape=(1, 5, 5), classes=2))
    save(net, tmp_path / "art")
    assert main(["verilog", str(tmp_path / "art")]) == 0
    assert main(["verilog", str(tmp_path / "art"), "--baseline"]) == 0
    assert (tmp_path / "art" / "rtl" / f"{TOP_NAME}.v").is_file()
    assert (tmp_path / "art" / "rtl-baseline" / f"{TOP_NAME}.v").is_file()
    desc = json.loads((tmp_path / "art" / "rtl" / f"{TOP_NAME}.json").read_text())
    assert desc["beats_per_image"] == 25 and desc["initiation_interval"] == 7 * 7


def test_cli_missing_artefact_exits_2(tmp_path, capsys):
    assert main(["verilog", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mstbnn: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nothing" / "rtl").exists()


def test_cli_unscheduled_artefact_exits_2_and_writes_nothing(tmp_path, capsys):
    net = random_dense_network(np.random.default_rng(2), features=4, hidden=(), classes=2)
    save(net, tmp_path / "art")
    assert main(["verilog", str(tmp_path / "art")]) == 2
    assert "--baseline" in capsys.readouterr().err
    assert not (tmp_path / "art" / "rtl").exists()
    assert main(["verilog", str(tmp_path / "art"), "--baseline"]) == 0
