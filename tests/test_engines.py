"""The folded engine through the same commands as the unrolled one: verilog, sim, synth."""

import json

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.compiler import io
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network


@pytest.fixture
def conv_dir(tmp_path):
    net = random_conv_network(np.random.default_rng(4), (1, 6, 6), ((4, 3, 1, 1, True),), (), 3)
    io.save(schedule_network(net), tmp_path / "net")
    return tmp_path / "net"


def test_folded_verilog_then_verilator_sim_is_bit_exact(conv_dir, capsys):
    assert main(["verilog", str(conv_dir), "--engine", "folded", "--simd", "4", "--gather", "1"]) == 0
    desc = json.loads((conv_dir / "rtl-folded" / "mstbnn_top.json").read_text())
    assert desc["engine"] == "folded" and desc["options"]["config"][0] == [4, 1]
    assert main(["sim", str(conv_dir), "--engine", "folded", "--vectors", "6"]) == 0
    result = json.loads((conv_dir / "sim-folded.json").read_text())
    assert result["bit_exact"] == result["vectors"] == 6
    assert result["latency"] == result["latency_model"] and result["timing_ok"]


def test_folded_options_need_the_folded_engine(conv_dir, capsys):
    assert main(["verilog", str(conv_dir), "--simd", "4"]) == 2
    assert "--engine folded only" in capsys.readouterr().err


def test_synth_folded_refuses_a_store_larger_than_the_block_ram(conv_dir, capsys):
    from mstbnn.devices import get_device
    from mstbnn.boards.synth import check_fit, estimate_fit
    from mstbnn.errors import UserError

    device = get_device("ecp5-25k")
    fit = estimate_fit({"luts": 100, "carry": 0, "ffs": 100, "bram": device.bram + 1}, device)
    assert not fit["fits"]
    with pytest.raises(UserError, match="block RAMs > "):
        check_fit(fit, device, force=False)
