"""Verilog of the folded engine: reproducible bytes, and a Verilator run bit-exact on the model's cycles."""

import json

import numpy as np
import pytest

from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.hw.folded.verilog import TOP_NAME, generate


def test_same_network_same_bytes(tmp_path):
    rng = np.random.default_rng(2)
    net = schedule_network(random_dense_network(rng, features=12, hidden=(8,), classes=3))
    va = generate(net, tmp_path / "a", config=(4, 2))
    vb = generate(net, tmp_path / "b", config=(4, 2))
    assert va == tmp_path / "a" / "rtl-folded" / f"{TOP_NAME}.v"
    for name in (f"{TOP_NAME}.v", f"{TOP_NAME}.json"):
        assert (va.parent / name).read_bytes() == (vb.parent / name).read_bytes()
    desc = json.loads(va.with_suffix(".json").read_text())
    assert desc["engine"] == "folded" and desc["reuse"] is True and desc["options"]["config"] == [[4, 2], [4, 2]]
    assert f"module {TOP_NAME}(" in va.read_text()
    vbase = generate(net, tmp_path / "a", reuse=False, config=(4, 2))
    assert vbase.parent.name == "rtl-folded-baseline"
    assert json.loads(vbase.with_suffix(".json").read_text())["reuse"] is False
    assert not list(va.parent.glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("reuse", [True, False])
def test_verilator_small_conv_bit_exact_with_model_cycles(tmp_path, reuse):
    from mstbnn.sim.design import Design
    from mstbnn.sim.verify import simulate

    rng = np.random.default_rng(11)
    net = schedule_network(random_conv_network(rng, input_shape=(1, 6, 6), convs=((4, 3, 1, 1, True),), classes=3))
    vpath = generate(net, tmp_path, reuse=reuse, config=(4, 2))
    design = Design.from_hw_json(vpath.with_suffix(".json"))
    desc = json.loads(vpath.with_suffix(".json").read_text())
    x = random_inputs(net, rng, 40)
    res = simulate(net, design, x, simulator="verilator", build_dir=tmp_path / "build", seed=1, timing_vectors=4)
    assert res.ok, res.problems()
    assert res.latency == desc["latency"] and res.initiation_interval == desc["initiation_interval"]
