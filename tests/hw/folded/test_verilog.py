"""Verilog of the folded engine: reproducible bytes, and a Verilator run bit-exact on the model's cycles."""

import json

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.hw.folded.verilog import generate


def test_same_network_same_bytes(tmp_path):
    rng = np.random.default_rng(2)
    net = schedule_network(random_dense_network(rng, features=12, hidden=(8,), classes=3))
    a = generate(net, tmp_path / "a", config=(4, 2))
    generate(net, tmp_path / "b", config=(4, 2))
    for name in ("mstbnn_folded.v", "mstbnn_folded.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    desc = json.loads((tmp_path / "a" / "mstbnn_folded.json").read_text())
    assert desc == a and desc["engine"] == "folded" and desc["reuse"] is True
    assert "module mstbnn_folded(" in (tmp_path / "a" / "mstbnn_folded.v").read_text()
    base = generate(net, tmp_path / "c", reuse=False, config=(4, 2))
    assert base["top"] == "mstbnn_folded_baseline" and base["reuse"] is False
    assert not list((tmp_path / "a").glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [True, False])
def test_verilator_small_conv_bit_exact_with_model_cycles(tmp_path, reuse):
    from mstbnn.sim.design import Design
    from mstbnn.sim.verify import simulate

    rng = np.random.default_rng(11)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 6, 6), convs=((4, 3, 1, 1, True),), classes=3))
    desc = generate(net, tmp_path / "rtl", reuse=reuse, config=(4, 2))
    design = Design.from_hw_json(tmp_path / "rtl" / f"{desc['top']}.json")
    x = random_inputs(net, rng, 40)
    res = simulate(net, design, x, simulator="verilator", build_dir=tmp_path / "build", seed=1, timing_vectors=4)
    assert res.ok, res.problems()
    assert res.latency == desc["latency"] and res.initiation_interval == desc["initiation_interval"]
